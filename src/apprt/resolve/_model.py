"""The resolver's vocabulary: candidates, indexes, plans and the error it raises."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from apprt.errors import ApprtError


@dataclass(frozen=True)
class Candidate:
    """One published version of an app, as far as resolution cares.

    ``dependencies`` maps app ids to the npm range of that app this version needs;
    ``platform`` is the npm range of platform API versions it runs on. Two candidates
    are equal when every field is; they hash by ``(app_id, version)``.
    """

    app_id: str
    version: str
    dependencies: dict[str, str] = field(default_factory=dict)
    platform: str = "*"
    yanked: bool = False

    def __hash__(self) -> int:
        return hash((self.app_id, self.version))

    def __str__(self) -> str:
        return f"{self.app_id} {self.version}"


class Index(Protocol):
    """Where the resolver looks up versions: the registry, or an in-memory dict."""

    def candidates(self, app_id: str) -> Sequence[Candidate]:
        """Every version of ``app_id`` (yanked ones included), in any order;
        an empty sequence when the app is unknown."""
        ...


class InMemoryIndex:
    """An :class:`Index` over a list of candidates (tests, benchmarks, examples)."""

    def __init__(self, candidates: Iterable[Candidate] = ()) -> None:
        self._by_app: dict[str, list[Candidate]] = {}
        for candidate in candidates:
            self.add(candidate)

    def add(self, candidate: Candidate) -> None:
        versions = self._by_app.setdefault(candidate.app_id, [])
        versions[:] = [c for c in versions if c.version != candidate.version]
        versions.append(candidate)

    def candidates(self, app_id: str) -> Sequence[Candidate]:
        return tuple(self._by_app.get(app_id, ()))

    def app_ids(self) -> list[str]:
        return sorted(self._by_app)


@dataclass
class InstallPlan:
    """What to install, in order.

    ``steps`` are the versions to install or upgrade to, dependencies before their
    dependents (ties broken by app id, so the same inputs give the same plan); apps
    already installed at the chosen version are not steps. ``resolved`` is the whole
    picture after the plan: every app the request needs and every installed app,
    with the version each will be at. ``upgrades`` maps each step that replaces an
    installed version to that version (``{"com.c": "1.2.0"}``).
    """

    steps: list[Candidate]
    resolved: dict[str, Candidate]
    upgrades: dict[str, str] = field(default_factory=dict)


class ResolutionError(ApprtError):
    """No set of versions satisfies the request; the problems say which requirements
    clash and why (HTTP 409)."""

    status_code: ClassVar[int] = 409


class RequirementError(ResolutionError):
    """A requested range or the platform version does not parse (HTTP 400)."""

    status_code: ClassVar[int] = 400
