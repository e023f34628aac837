"""The registry's refusals, each with its HTTP status.

Every error carries :class:`~apprt.errors.Problem` entries (what, where, how to fix);
the server turns them into ``application/problem+json`` with type
``urn:apprt:problem:<kebab-case class name>``.
"""

from __future__ import annotations

from typing import ClassVar, Self

from apprt.errors import ApprtError, Problem


class RegistryError(ApprtError):
    """A refused registry request (HTTP 400 unless a subclass says otherwise)."""

    @classmethod
    def one(
        cls, reason: str, *, hint: str = "", location: str = "", file: str = "", title: str = ""
    ) -> Self:
        return cls(
            [Problem(reason=reason, file=file, location=location, hint=hint)],
            title=title or cls.default_title,
        )

    default_title: ClassVar[str] = "refused by the registry"


class ForbiddenError(RegistryError):
    """The caller is known but may not do this (HTTP 403)."""

    status_code: ClassVar[int] = 403
    default_title: ClassVar[str] = "not allowed"


class NotFoundError(RegistryError):
    """An unknown publisher, key, token, app, version or upload (HTTP 404)."""

    status_code: ClassVar[int] = 404
    default_title: ClassVar[str] = "not found"


class ConflictError(RegistryError):
    """The request contradicts the registry's state (HTTP 409): an existing name,
    another package under a published ``id@version``, a state that does not allow
    the transition."""

    status_code: ClassVar[int] = 409
    default_title: ClassVar[str] = "conflict"


class UploadTooLargeError(RegistryError):
    """The upload is over the size limit (HTTP 413); nothing of it was kept.

    The answer carries ``Connection: close``: the rest of the body is never read, and
    closing the connection is what stops the client sending it (otherwise the server
    would read and discard the remaining bytes to reuse the connection).
    """

    status_code: ClassVar[int] = 413
    default_title: ClassVar[str] = "upload too large"
    headers: ClassVar[dict[str, str]] = {"Connection": "close"}


class UnsupportedUploadError(RegistryError):
    """The request body is neither ``application/octet-stream`` nor multipart (HTTP 415)."""

    status_code: ClassVar[int] = 415
    default_title: ClassVar[str] = "unsupported upload"


class UploadRejectedError(RegistryError):
    """The package failed validation (HTTP 422, or 409 when it conflicts with a
    published version); the upload's job holds every check's result."""

    status_code: ClassVar[int] = 422
    default_title: ClassVar[str] = "package rejected"

    def __init__(self, problems: list[Problem], *, upload_id: int, title: str = "") -> None:
        super().__init__(problems, title=title or f"upload {upload_id} rejected")
        self.upload_id = upload_id
        #: Where the upload's job (every check's result) can be read.
        self.headers = {"Location": f"/api/v1/registry/uploads/{upload_id}"}


class UploadConflictError(UploadRejectedError):
    """Another package under an existing ``id@version``, or a version that is not newer
    than the newest published one (HTTP 409)."""

    status_code: ClassVar[int] = 409


class UploadForbiddenError(UploadRejectedError):
    """The uploader may not publish this app: another publisher's name in the
    manifest, a token scope that does not cover the app id, or an app owned by
    another publisher (HTTP 403)."""

    status_code: ClassVar[int] = 403
