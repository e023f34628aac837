"""The resolvelib provider: how apprt's apps, ranges and rules map onto resolvelib."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

from apprt.resolve._model import Candidate, Index
from apprt.versioning import Range, Version, VersionError, parse_range, parse_version

if TYPE_CHECKING:
    from resolvelib.providers import Preference

Origin = Literal["request", "installed", "dependency"]

_PIN = re.compile(r"=?\s*(\S+)")


@dataclass(frozen=True)
class Requirement:
    """``app_id`` at a version inside ``range_text``.

    ``origin`` says where it comes from: the user's request, an installed app kept
    where it is (``range_text`` is then ``*``: any version, the installed one
    preferred), or a dependency of ``via``.
    """

    app_id: str
    range_text: str
    origin: Origin
    via: Candidate | None = None

    @property
    def display_range(self) -> str:
        return self.range_text.strip() or "*"


Info = RequirementInformation[Requirement, Candidate]


@lru_cache(maxsize=65536)
def version_of(text: str) -> Version:
    return parse_version(text)


def exact_pin(range_text: str) -> Version | None:
    """The version ``range_text`` pins exactly (``1.2.3``, ``=1.2.3``), else None."""
    match = _PIN.fullmatch(range_text.strip())
    if match is None:
        return None
    try:
        return version_of(match.group(1))
    except VersionError:
        return None


@dataclass(frozen=True)
class _Entry:
    candidate: Candidate
    version: Version
    platform_ok: bool


class Provider(AbstractProvider[Requirement, Candidate, str]):
    """Answers resolvelib's questions from an :class:`Index`.

    * Newest versions first; the installed version before all others.
    * Installed apps the request does not name are *held*: while the installed
      version satisfies every requirement on it, it is the only candidate, so the
      resolver never moves an installed app just to make room. When a requirement
      excludes it, the app may move to any version satisfying all requirements (an
      upgrade step).
    * Versions whose platform range excludes the platform, and yanked versions, are
      never candidates, unless installed (already running, nothing to install) or,
      for yanked ones, pinned exactly by some requirement.
    * Versions whose data does not parse (a bad range in the index) are skipped.
    """

    def __init__(
        self,
        index: Index,
        *,
        installed: Mapping[str, str],
        requested: Iterable[str],
        platform_version: Version,
    ) -> None:
        self.index = index
        self.installed = dict(installed)
        self.requested = frozenset(requested)
        self.platform_version = platform_version
        self._entries: dict[str, list[_Entry]] = {}
        #: Every requirement seen, by app id (an ordered set): what explanations use
        #: to tell why a version was considered.
        self.seen: dict[str, dict[Requirement, None]] = {}

    # -- index access ------------------------------------------------------------------

    def entries(self, app_id: str) -> list[_Entry]:
        """Usable versions of ``app_id``, newest first (cached)."""
        cached = self._entries.get(app_id)
        if cached is not None:
            return cached
        entries: list[_Entry] = []
        seen_versions: set[str] = set()
        for candidate in self.index.candidates(app_id):
            if candidate.app_id != app_id or candidate.version in seen_versions:
                continue
            try:
                version = version_of(candidate.version)
                platform = parse_range(candidate.platform)
                for range_text in candidate.dependencies.values():
                    parse_range(range_text)
            except VersionError:
                continue
            seen_versions.add(candidate.version)
            entries.append(_Entry(candidate, version, platform.contains(self.platform_version)))
        installed = self.installed.get(app_id)
        if installed is not None and installed not in seen_versions:
            # Installed but gone from the index (unpublished): kept as it is, with no
            # known dependencies.
            try:
                version = version_of(installed)
            except VersionError:
                pass
            else:
                entries.append(_Entry(Candidate(app_id, installed, {}, "*"), version, True))
        entries.sort(key=lambda e: e.version, reverse=True)
        self._entries[app_id] = entries
        return entries

    def is_installed(self, candidate: Candidate) -> bool:
        return self.installed.get(candidate.app_id) == candidate.version

    # -- resolvelib --------------------------------------------------------------------

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.app_id

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Info]],
        backtrack_causes: Sequence[Info],
    ) -> Preference:
        infos = list(information[identifier])
        direct = any(i.parent is None and i.requirement.origin == "request" for i in infos)
        pinned = any(exact_pin(i.requirement.range_text) is not None for i in infos)
        return (not pinned, not direct, identifier)

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Info]],
        backtrack_causes: Sequence[Info],
    ) -> Iterable[str]:
        # Work on what caused the last backtrack first (as pip does): it narrows the
        # search to the conflict instead of re-pinning unrelated apps.
        identifiers = list(identifiers)
        if backtrack_causes:
            causes = {i.requirement.app_id for i in backtrack_causes}
            causes |= {i.parent.app_id for i in backtrack_causes if i.parent is not None}
            narrowed = [name for name in identifiers if name in causes]
            if narrowed:
                return narrowed
        return identifiers

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        reqs = list(requirements[identifier])
        seen = self.seen.setdefault(identifier, {})
        for req in reqs:
            seen[req] = None
        bad = {c.version for c in incompatibilities[identifier]}
        ranges = [parse_range(r.range_text) for r in reqs]
        pins = {p for r in reqs if (p := exact_pin(r.range_text)) is not None}
        installed = self.installed.get(identifier)
        held = installed is not None and identifier not in self.requested

        matches: list[Candidate] = []
        installed_match: Candidate | None = None
        installed_fits = False
        for entry in self.entries(identifier):
            candidate = entry.candidate
            fits = all(rng.contains(entry.version) for rng in ranges)
            if candidate.version == installed:
                installed_fits = fits
                if fits and candidate.version not in bad:
                    installed_match = candidate
                continue
            if not fits or candidate.version in bad or not entry.platform_ok:
                continue
            if candidate.yanked and entry.version not in pins:
                continue
            matches.append(candidate)
        if held and installed_fits:
            return [installed_match] if installed_match is not None else []
        if installed_match is not None:
            matches.insert(0, installed_match)
        return matches

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        if candidate.app_id != requirement.app_id:
            return False
        return _contains(parse_range(requirement.range_text), candidate.version)

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        return [
            Requirement(app_id, range_text, "dependency", candidate)
            for app_id, range_text in sorted(candidate.dependencies.items())
        ]


def _contains(rng: Range, version: str) -> bool:
    try:
        return rng.contains(version_of(version))
    except VersionError:
        return False
