"""The resolvelib provider: how apprt's apps, ranges and rules map onto resolvelib."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

from apprt.resolve._model import Candidate, Index
from apprt.resolve._prune import DeadEnds, Option
from apprt.versioning import Version, VersionError, parse_range, parse_version

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


@lru_cache(maxsize=65536)
def fits(range_text: str, version: str) -> bool:
    """Whether ``version`` is inside ``range_text`` (both already known to parse).

    Memoised: resolution asks the same questions many times, and semantic_version's
    matching builds objects on every call."""
    return parse_range(range_text).contains(version_of(version))


@lru_cache(maxsize=4096)
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
    * Dead ends (:mod:`apprt.resolve._prune`: versions whose dependencies cannot be
      met inside the requested ranges) are never offered; the installed version is
      always offered, so a clash with it is reported as such.
    """

    def __init__(
        self,
        index: Index,
        *,
        installed: Mapping[str, str],
        requested: Mapping[str, str],
        platform_version: Version,
    ) -> None:
        self.index = index
        self.installed = dict(installed)
        self.requested = frozenset(requested)
        self.root_ranges = {app_id: [rng] for app_id, rng in requested.items()}
        self.dead_ends = DeadEnds(self._options, fits, self.root_ranges)
        self.platform_version = platform_version
        self._platform_text = str(platform_version)
        self._entries: dict[str, list[_Entry]] = {}
        self._option_cache: dict[str, list[Option]] = {}
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
                platform_ok = fits(candidate.platform, self._platform_text)
                for range_text in candidate.dependencies.values():
                    parse_range(range_text)
            except VersionError:
                continue
            seen_versions.add(candidate.version)
            entries.append(_Entry(candidate, version, platform_ok))
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

    def _options(self, app_id: str) -> list[Option]:
        options = self._option_cache.get(app_id)
        if options is None:
            options = [
                Option(e.candidate, e.platform_ok or self.is_installed(e.candidate))
                for e in self.entries(app_id)
            ]
            self._option_cache[app_id] = options
        return options

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
        return self._preference(identifier, information)

    @staticmethod
    def _preference(
        identifier: str, information: Mapping[str, Iterator[Info]]
    ) -> tuple[bool, bool, str]:
        """Exact pins first (one choice, cheap to rule out), then what the user asked
        for, then app id order (so the outcome never depends on dict order)."""
        pinned = direct = False
        for info in information[identifier]:
            req = info.requirement
            if not pinned and exact_pin(req.range_text) is not None:
                pinned = True
            if not direct and info.parent is None and req.origin == "request":
                direct = True
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
        # search to the conflict instead of re-pinning unrelated apps. Then pick the
        # preferred one here, which spares resolvelib a get_preference call per app.
        names = list(identifiers)
        if backtrack_causes:
            causes = {i.requirement.app_id for i in backtrack_causes}
            causes |= {i.parent.app_id for i in backtrack_causes if i.parent is not None}
            narrowed = [name for name in names if name in causes]
            if narrowed:
                names = narrowed
        return [min(names, key=lambda name: self._preference(name, information))]

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]]:
        reqs = list(requirements[identifier])
        seen = self.seen.setdefault(identifier, {})
        for req in reqs:
            seen[req] = None
        bad = {c.version for c in incompatibilities[identifier]}
        ranges = [r.range_text for r in reqs]
        pins = {p for r in reqs if (p := exact_pin(r.range_text)) is not None}
        installed = self.installed.get(identifier)
        held = installed is not None and identifier not in self.requested

        matches: list[Candidate] = []
        installed_match: Candidate | None = None
        installed_fits = False
        for entry in self.entries(identifier):
            candidate = entry.candidate
            ok = all(fits(rng, candidate.version) for rng in ranges)
            if candidate.version == installed:
                installed_fits = ok
                if ok and candidate.version not in bad:
                    installed_match = candidate
                continue
            if not ok or candidate.version in bad or not entry.platform_ok:
                continue
            if candidate.yanked and entry.version not in pins:
                continue
            matches.append(candidate)
        if held and installed_fits:
            matches = []
        if installed_match is not None:
            matches.insert(0, installed_match)
        # Lazy: resolvelib takes candidates one at a time, so dead ends are only
        # looked for in the versions it actually gets to (usually the first).
        return lambda: self._alive(matches, installed_match)

    def _alive(self, matches: list[Candidate], installed: Candidate | None) -> Iterator[Candidate]:
        for candidate in matches:
            if candidate is installed or self.dead_ends.reason(candidate) is None:
                yield candidate

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        if candidate.app_id != requirement.app_id:
            return False
        try:
            return fits(requirement.range_text, candidate.version)
        except VersionError:
            return False

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        return [
            Requirement(app_id, range_text, "dependency", candidate)
            for app_id, range_text in sorted(candidate.dependencies.items())
        ]
