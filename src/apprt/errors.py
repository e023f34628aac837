"""Errors that reach a user.

Every rejection in apprt says *what* was wrong, *where*, and *how to fix it*.
:class:`Problem` carries those three so the CLI can print them and the HTTP
layer can turn them into ``application/problem+json`` (RFC 9457).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    ``file`` is the file (or archive member) at fault, ``location`` the field path
    inside it (``backend.entry``) or a line, ``reason`` what is wrong, and ``hint``
    how to fix it.
    """

    reason: str
    file: str = ""
    location: str = ""
    hint: str = ""

    def __str__(self) -> str:
        where = ":".join(part for part in (self.file, self.location) if part)
        text = f"{where}: {self.reason}" if where else self.reason
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, str]:
        return {
            "file": self.file,
            "location": self.location,
            "reason": self.reason,
            "hint": self.hint,
        }


@dataclass
class ApprtError(Exception):
    """Base class of errors that reject user input; carries one or more problems."""

    problems: list[Problem] = field(default_factory=list)
    title: str = "invalid input"

    #: The HTTP status the API answers with (subclasses choose theirs).
    status_code: ClassVar[int] = 400

    def __post_init__(self) -> None:
        super().__init__(self.title)

    @classmethod
    def single(
        cls, reason: str, *, file: str = "", location: str = "", hint: str = ""
    ) -> ApprtError:
        return cls([Problem(reason=reason, file=file, location=location, hint=hint)])

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{self.title}:"] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class NotFoundError(ApprtError):
    """What was asked for does not exist, or the caller may not know it does (HTTP 404)."""

    status_code: ClassVar[int] = 404


class ForbiddenError(ApprtError):
    """The caller is known but may not do this (HTTP 403)."""

    status_code: ClassVar[int] = 403


class ConflictError(ApprtError):
    """The request contradicts the current state (HTTP 409)."""

    status_code: ClassVar[int] = 409


class ManifestError(ApprtError):
    """``app.toml`` does not parse or does not follow the schema."""


class PackageError(ApprtError):
    """An ``.apppkg`` archive is malformed, unsafe, tampered with, or badly signed."""
