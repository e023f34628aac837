"""SemVer 2.0 versions and npm-style ranges, the only version language apprt speaks.

Apps, the platform API and frontend shared dependencies are all versioned with
`SemVer 2.0 <https://semver.org>`_; requirements on them are written as npm ranges
(``^1.2``, ``~1.4.2``, ``>=1.0.0 <2.0.0``, ``1.x || 2.1.0``), which most web
developers already read fluently. Parsing and matching come from
``semantic_version``; this module only fixes the dialect and the error messages::

    >>> from apprt.versioning import max_satisfying, parse_range, parse_version
    >>> parse_range("^1.2").contains(parse_version("1.9.0"))
    True
    >>> str(max_satisfying(["1.0.0", "1.4.0", "2.0.0"], "~1.0 || ~1.4"))
    '1.4.0'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import semantic_version
from semantic_version import Version

__all__ = [
    "SEMVER_PATTERN",
    "Range",
    "Version",
    "VersionError",
    "max_satisfying",
    "parse_range",
    "parse_version",
]

#: The official SemVer 2.0 grammar (semver.org), used in the JSON Schema too.
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_SEMVER_RE = re.compile(SEMVER_PATTERN)


class VersionError(ValueError):
    """A version or range that does not parse; the message says how to write it."""


def parse_version(text: str) -> Version:
    """Parse a strict SemVer 2.0 version (``1.2.3``, ``1.0.0-rc.1+build.5``)."""
    if not isinstance(text, str) or not _SEMVER_RE.match(text):
        raise VersionError(
            f"{text!r} is not a SemVer 2.0 version; write MAJOR.MINOR.PATCH "
            "with an optional -prerelease and +build, e.g. 1.4.0 or 2.0.0-rc.1"
        )
    return Version(text)


@dataclass(frozen=True)
class Range:
    """An npm-style version range; ``contains`` follows npm's rules on pre-releases
    (a pre-release only matches a comparator naming the same major.minor.patch)."""

    text: str
    _spec: semantic_version.NpmSpec

    def contains(self, version: Version | str) -> bool:
        if isinstance(version, str):
            version = parse_version(version)
        return bool(self._spec.match(version))

    def __contains__(self, version: Version | str) -> bool:
        return self.contains(version)

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=4096)
def parse_range(text: str) -> Range:
    """Parse an npm-style range; ``*`` or an empty string means any version."""
    if not isinstance(text, str):
        raise VersionError(f"{text!r} is not a version range")
    stripped = text.strip()
    try:
        spec = semantic_version.NpmSpec(stripped or "*")
    except ValueError:
        raise VersionError(
            f"{text!r} is not a valid version range; use npm syntax such as "
            "^1.2.0, ~1.4, >=1.0.0 <2.0.0, 1.x, or several joined by ||"
        ) from None
    return Range(stripped, spec)


def max_satisfying(versions: Iterable[Version | str], range_text: str) -> Version | None:
    """The highest of ``versions`` inside ``range_text``, or None."""
    rng = parse_range(range_text)
    parsed = [parse_version(v) if isinstance(v, str) else v for v in versions]
    matching = [v for v in parsed if rng.contains(v)]
    return max(matching) if matching else None
