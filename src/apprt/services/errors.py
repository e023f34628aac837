"""Refusals of the platform services, each with its HTTP status and audit outcome.

Every class is an :class:`~apprt.errors.ApprtError` (problems: what, where, how to fix)
with a ``status_code``; on the platform API socket they answer as
``application/problem+json`` whose ``type`` is ``urn:apprt:problem:<kebab name>`` (the
SDK turns them into :mod:`apprt.sdk.errors`). ``outcome`` is what the audit log
records for a call refused with it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from apprt.errors import ApprtError, Problem


class ServiceError(ApprtError):
    """Base of the services' refusals."""

    status_code: ClassVar[int] = 400
    outcome: ClassVar[str] = "invalid"
    #: Extra members of the problem+json body (``current_version``, ``retry_after``).
    extra: dict[str, Any]
    headers: dict[str, str]

    def __init__(
        self,
        problems: list[Problem],
        *,
        title: str = "",
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(problems, title=title or type(self).default_title)
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        #: The organization the refused call was for (or claimed), for the audit log.
        self.org: str | None = None

    default_title: ClassVar[str] = "refused"

    @classmethod
    def one(
        cls,
        reason: str,
        *,
        location: str = "",
        hint: str = "",
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ServiceError:
        return cls([Problem(reason, location=location, hint=hint)], extra=extra, headers=headers)


class InvalidStateRequestError(ServiceError):
    """A malformed call: bad key, value not JSON or too large, bad arguments."""

    status_code: ClassVar[int] = 400
    outcome: ClassVar[str] = "invalid"
    default_title: ClassVar[str] = "invalid request"


class UnknownOperationError(ServiceError):
    status_code: ClassVar[int] = 404
    outcome: ClassVar[str] = "invalid"
    default_title: ClassVar[str] = "unknown operation"


class PermissionDeniedError(ServiceError):
    """The app lacks the permission: not declared, or not granted by the org admin."""

    status_code: ClassVar[int] = 403
    outcome: ClassVar[str] = "denied"
    default_title: ClassVar[str] = "permission denied"


class IdentityRejectedError(ServiceError):
    """A forwarded caller identity is missing, stale, forged, or for another organization."""

    status_code: ClassVar[int] = 403
    outcome: ClassVar[str] = "identity_rejected"
    default_title: ClassVar[str] = "caller identity rejected"


class RateLimitedError(ServiceError):
    status_code: ClassVar[int] = 429
    outcome: ClassVar[str] = "rate_limited"
    default_title: ClassVar[str] = "too many platform calls"


class QuotaExceededError(ServiceError):
    """HTTP 507 (Insufficient Storage): the write would pass the state quota."""

    status_code: ClassVar[int] = 507
    outcome: ClassVar[str] = "quota_exceeded"
    default_title: ClassVar[str] = "state quota exceeded"


class StateConflictError(ServiceError):
    """Compare-and-set lost: the key is not at the expected version."""

    status_code: ClassVar[int] = 409
    outcome: ClassVar[str] = "conflict"
    default_title: ClassVar[str] = "version conflict"


class NotAnIntegerError(StateConflictError):
    """``increment`` on a value that is not an integer (or would overflow 64 bits)."""

    default_title: ClassVar[str] = "not an integer"


class InstanceGoneError(ServiceError):
    """The instance behind this socket was removed (HTTP 410)."""

    status_code: ClassVar[int] = 410
    outcome: ClassVar[str] = "denied"
    default_title: ClassVar[str] = "instance removed"


class BackupNotFoundError(ServiceError):
    status_code: ClassVar[int] = 404
    outcome: ClassVar[str] = "invalid"
    default_title: ClassVar[str] = "backup not found"


class InvalidBackupError(ServiceError):
    status_code: ClassVar[int] = 400
    outcome: ClassVar[str] = "invalid"
    default_title: ClassVar[str] = "invalid backup"


class InternalServiceError(ServiceError):
    """The platform failed (HTTP 500); nothing of the cause reaches the app."""

    status_code: ClassVar[int] = 500
    outcome: ClassVar[str] = "error"
    default_title: ClassVar[str] = "platform error"
