"""What the platform API refuses, as exceptions app code can catch (standard library only).

Every exception says what went wrong and how to fix it (``str(exc)``), and keeps the
platform's answer: ``status`` (HTTP), ``title``, ``problems`` (a list of dicts with
``reason``, ``location``, ``hint``)::

    from apprt.sdk import state
    from apprt.sdk.errors import Conflict, QuotaExceeded

    try:
        state.compare_and_set("counter", version, new_value)
    except Conflict as exc:
        ...  # someone else wrote it first: read again (exc.current_version) and retry
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class PlatformError(Exception):
    """The platform API refused a call or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        title: str = "",
        problems: Sequence[Mapping[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title or message
        self.problems: list[dict[str, str]] = [dict(p) for p in problems]

    @property
    def hint(self) -> str:
        """How to fix it (the first problem's hint), or ``""``."""
        for problem in self.problems:
            if problem.get("hint"):
                return problem["hint"]
        return ""


class PlatformUnavailable(PlatformError):
    """The platform API socket is missing or does not answer."""


class PermissionDenied(PlatformError):
    """The app lacks the permission (not declared in app.toml, or not granted by the
    organization's admin), or the caller's identity was refused."""


class QuotaExceeded(PlatformError):
    """The write would take the app's state past its quota for the organization."""


class RateLimited(PlatformError):
    """Too many platform calls for this app and organization; retry after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: float = 1.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Conflict(PlatformError):
    """The key's version is not the one expected (compare-and-set lost a race), or its
    value cannot take the operation (incrementing a value that is not an integer)."""

    def __init__(self, message: str, *, current_version: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: The key's version now (0: absent), when the platform said it.
        self.current_version = current_version


class InvalidRequest(PlatformError):
    """A malformed call: a key too long or not text, a value that is not JSON or too large."""


def error_for(status: int, body: Mapping[str, Any]) -> PlatformError:
    """The exception for a problem+json answer of the platform API."""
    raw = body.get("problems")
    problems = [p for p in raw if isinstance(p, dict)] if isinstance(raw, list) else []
    title = str(body.get("title") or f"HTTP {status}")
    parts = []
    for p in problems:
        reason, hint = str(p.get("reason", "")), str(p.get("hint", ""))
        parts.append(f"{reason} ({hint})" if hint else reason)
    message = "; ".join(part for part in parts if part) or str(body.get("detail") or title)
    common: dict[str, Any] = {"status": status, "title": title, "problems": problems}
    if status == 403:
        return PermissionDenied(message, **common)
    if status == 429:
        retry = body.get("retry_after")
        return RateLimited(
            message, retry_after=float(retry) if isinstance(retry, int | float) else 1.0, **common
        )
    if status == 507:
        return QuotaExceeded(message, **common)
    if status == 409:
        current = body.get("current_version")
        return Conflict(
            message, current_version=current if isinstance(current, int) else None, **common
        )
    if status in (400, 404, 413, 422):
        return InvalidRequest(message, **common)
    if status in (502, 503, 504):
        return PlatformUnavailable(message, **common)
    return PlatformError(message, **common)
