"""The install engine's refusals, each with its HTTP status.

Every one carries problems (what, where, how to fix). The same errors come back from
the API at once (the request is checked before a job is made) and from a job's step
(``job.error``), so the CLI prints both the same way. Resolution conflicts are
:class:`apprt.resolve.ResolutionError` (409) with the resolver's explanation.
"""

from __future__ import annotations

from typing import ClassVar, Self

from apprt.errors import ApprtError, Problem


class InstallError(ApprtError):
    """An install, update or uninstall was refused (HTTP 400 unless a subclass says otherwise)."""

    default_title: ClassVar[str] = "install refused"

    @classmethod
    def one(cls, reason: str, *, location: str = "", hint: str = "", title: str = "") -> Self:
        return cls(
            [Problem(reason=reason, location=location, hint=hint)],
            title=title or cls.default_title,
        )


class UnknownAppError(InstallError):
    """No such app, or no such version, in the registry (HTTP 404)."""

    status_code: ClassVar[int] = 404
    default_title: ClassVar[str] = "not in the registry"


class UnsatisfiableRangeError(InstallError):
    """No installable version matches the requested range (HTTP 409)."""

    status_code: ClassVar[int] = 409
    default_title: ClassVar[str] = "no matching version"


class IncompatibleError(InstallError):
    """The app does not run on this platform, or clashes with installed apps (HTTP 409)."""

    status_code: ClassVar[int] = 409
    default_title: ClassVar[str] = "incompatible"


class AlreadyInstalledError(InstallError):
    """The app is installed (or being installed) in the organization (HTTP 409)."""

    status_code: ClassVar[int] = 409
    default_title: ClassVar[str] = "already installed"


class NotInstalledError(InstallError):
    """The app is not installed in the organization (HTTP 404)."""

    status_code: ClassVar[int] = 404
    default_title: ClassVar[str] = "not installed"


class QuotaExceededError(InstallError):
    """The organization's quota (apps, memory, storage) would be exceeded (HTTP 409)."""

    status_code: ClassVar[int] = 409
    default_title: ClassVar[str] = "quota exceeded"


class InvalidConfigError(InstallError):
    """The organization's settings do not follow the app's config schema (HTTP 422)."""

    status_code: ClassVar[int] = 422
    default_title: ClassVar[str] = "invalid settings"


class ConsentRequiredError(InstallError):
    """Permissions the app declares were not consented to by an org admin (HTTP 403)."""

    status_code: ClassVar[int] = 403
    default_title: ClassVar[str] = "consent required"


class DependentsError(InstallError):
    """Other installed apps depend on the app being removed (HTTP 409)."""

    status_code: ClassVar[int] = 409
    default_title: ClassVar[str] = "needed by other apps"


class VerificationError(InstallError):
    """The package could not be downloaded or did not verify through TUF (HTTP 502)."""

    status_code: ClassVar[int] = 502
    default_title: ClassVar[str] = "package verification failed"


class DiskFullError(InstallError):
    """Not enough disk space to deploy the app (HTTP 507)."""

    status_code: ClassVar[int] = 507
    default_title: ClassVar[str] = "disk full"


class HealthCheckError(InstallError):
    """The app did not become healthy within the timeout (HTTP 502)."""

    status_code: ClassVar[int] = 502
    default_title: ClassVar[str] = "health check failed"


class RuntimeUnavailableError(InstallError):
    """The runtime (supervisor) is not running on this platform (HTTP 503)."""

    status_code: ClassVar[int] = 503
    default_title: ClassVar[str] = "runtime unavailable"


class UpToDateError(InstallError):
    """An update found no version newer than the installed one in its range (HTTP 409)."""

    status_code: ClassVar[int] = 409
    default_title: ClassVar[str] = "already up to date"


class HookError(InstallError):
    """An app's install or upgrade hook failed in its sandbox (HTTP 502)."""

    status_code: ClassVar[int] = 502
    default_title: ClassVar[str] = "hook failed"
