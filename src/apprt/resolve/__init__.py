"""Which versions to install: app dependency and platform compatibility resolution.

An app's manifest names the other apps it needs, each with an npm range, and the
range of platform API versions it runs on. Given what an organization asks for and
what it already has, :func:`resolve` picks one version of every app involved and
returns an :class:`InstallPlan`: the versions to install, dependencies first. It is
built on `resolvelib <https://github.com/sarugaku/resolvelib>`_, the resolver pip
uses, with apprt's rules in the provider and explanations worth reading when no plan
exists.

Example::

    >>> from apprt.resolve import Candidate, InMemoryIndex, ResolutionError, resolve
    >>> index = InMemoryIndex([
    ...     Candidate("com.crm", "1.0.0", {}, "^1"),
    ...     Candidate("com.crm", "1.3.0", {}, "^1"),
    ...     Candidate("com.crm", "2.0.0", {}, "^1"),
    ...     Candidate("com.sales", "2.1.0", {"com.crm": "^1.2"}, "^1"),
    ... ])
    >>> plan = resolve({"com.sales": "^2"}, index, platform_version="1.0.0")
    >>> [str(step) for step in plan.steps]
    ['com.crm 1.3.0', 'com.sales 2.1.0']
    >>> try:
    ...     resolve({"com.sales": "^2", "com.crm": "^2"}, index, platform_version="1.0.0")
    ... except ResolutionError as error:
    ...     print(error)
    com.crm: com.sales 2.1.0 needs com.crm ^1.2 (because you asked for com.sales ^2), but \
you asked for com.crm ^2; no version of com.crm satisfies both ^1.2 and ^2 (relax one of \
these ranges, or ask for other versions of the apps that declare them)

Rules (see ``docs/resolver.md``):

* **Newest first.** Among the versions that fit, the newest is tried first.
* **Installed apps are preferred.** An installed app keeps its version while that
  version satisfies every range on it. An installed app the request does not name is
  *held*: it is never moved just to make room for something else, its own
  dependency ranges stay in force (it keeps running), and it moves only when a new
  requirement excludes its version, which makes an upgrade step (listed in
  :attr:`InstallPlan.upgrades`). If an installed app depends on the old range of what
  would move, that is a conflict naming the installed app: add it to the request to
  let it be upgraded as well.
* **Platform.** Versions whose ``platform`` range excludes ``platform_version`` are
  never installed, and the error says so when that is why nothing fits.
* **Yanked versions** are installed only when a requirement pins them exactly
  (``1.2.3`` or ``=1.2.3``). An installed yanked version is kept.
* **Order.** Steps come dependencies first; ties (and members of a dependency cycle)
  in app id order, so the same inputs always give the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping

from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep

from apprt import PLATFORM_API_VERSION
from apprt.errors import Problem
from apprt.resolve._explain import Explainer
from apprt.resolve._model import (
    Candidate,
    Index,
    InMemoryIndex,
    InstallPlan,
    RequirementError,
    ResolutionError,
)
from apprt.resolve._provider import Provider, Requirement
from apprt.resolve._resolution import IncrementalResolution, connected_mapping
from apprt.versioning import Version, VersionError, parse_range, parse_version

__all__ = [
    "Candidate",
    "InMemoryIndex",
    "Index",
    "InstallPlan",
    "RequirementError",
    "ResolutionError",
    "dependency_order",
    "resolve",
]

#: Rounds (one pin each, plus backtracking) before giving up on a resolution.
MAX_ROUNDS = 20_000

_NO_INSTALLED: Mapping[str, str] = {}


def resolve(
    requested: Mapping[str, str],
    index: Index,
    *,
    installed: Mapping[str, str] = _NO_INSTALLED,
    platform_version: str = PLATFORM_API_VERSION,
) -> InstallPlan:
    """Plan installing ``requested`` (app id → npm range) next to ``installed`` (app id →
    version) on platform API ``platform_version``.

    Raises :class:`ResolutionError` (409) when no set of versions fits, with one
    problem per app in conflict, and :class:`RequirementError` (400) when a requested
    range, an installed version or the platform version does not parse.
    """
    platform = _check_inputs(requested, installed, platform_version)
    provider = Provider(index, installed=installed, requested=requested, platform_version=platform)
    roots = [Requirement(app_id, rng, "request") for app_id, rng in sorted(requested.items())]
    roots += [
        Requirement(app_id, "*", "installed")
        for app_id in sorted(installed)
        if app_id not in requested
    ]
    resolution = IncrementalResolution(provider, BaseReporter())
    try:
        state = resolution.resolve(roots, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as exc:
        raise ResolutionError(
            Explainer(provider).problems(list(exc.causes)), title="no install plan"
        ) from None
    except ResolutionTooDeep:
        raise ResolutionError(
            [
                Problem(
                    reason=f"no plan found within {MAX_ROUNDS} resolution rounds",
                    location="requested",
                    hint="narrow the requested ranges (pin versions) to shrink the search",
                )
            ],
            title="no install plan",
        ) from None
    mapping = connected_mapping(state)
    resolved = {app_id: mapping[app_id] for app_id in sorted(mapping)}
    steps = [c for c in dependency_order(resolved) if not provider.is_installed(c)]
    upgrades = {c.app_id: installed[c.app_id] for c in steps if c.app_id in installed}
    return InstallPlan(steps=steps, resolved=resolved, upgrades=upgrades)


def dependency_order(resolved: Mapping[str, Candidate]) -> list[Candidate]:
    """``resolved`` sorted dependencies first, ties by app id.

    Apps in a dependency cycle cannot all come after each other; the cycle is placed
    as a block where its first member would go, members in app id order.
    """
    deps = {
        app_id: sorted(d for d in c.dependencies if d in resolved and d != app_id)
        for app_id, c in resolved.items()
    }
    components = _strongly_connected(deps)
    component_of = {app: i for i, members in enumerate(components) for app in members}
    # Kahn's algorithm over the condensation, always taking the smallest app id ready.
    waiting = {
        i: {component_of[d] for app in members for d in deps[app]} - {i}
        for i, members in enumerate(components)
    }
    dependents: dict[int, set[int]] = {i: set() for i in waiting}
    for i, needs in waiting.items():
        for j in needs:
            dependents[j].add(i)
    ready = sorted((min(components[i]), i) for i, needs in waiting.items() if not needs)
    order: list[Candidate] = []
    while ready:
        _, i = ready.pop(0)
        order.extend(resolved[app] for app in sorted(components[i]))
        for j in sorted(dependents[i]):
            waiting[j].discard(i)
            if not waiting[j]:
                ready.append((min(components[j]), j))
                ready.sort()
    return order


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (deep chains must not hit the recursion limit)."""
    index_of: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_index = work.pop()
            if child_index == 0:
                index_of[node] = lowlink[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = graph[node]
            recursed = False
            for i in range(child_index, len(children)):
                child = children[i]
                if child not in index_of:
                    work.append((node, i + 1))
                    work.append((child, 0))
                    recursed = True
                    break
                if child in on_stack:
                    lowlink[node] = min(lowlink[node], index_of[child])
            if recursed:
                continue
            if lowlink[node] == index_of[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                components.append(members)
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
    return components


def _check_inputs(
    requested: Mapping[str, str], installed: Mapping[str, str], platform_version: str
) -> Version:
    problems: list[Problem] = []
    for app_id, range_text in sorted(requested.items()):
        try:
            parse_range(range_text)
        except VersionError as exc:
            problems.append(Problem(reason=str(exc), location=f"requested.{app_id}"))
    for app_id, version in sorted(installed.items()):
        try:
            parse_version(version)
        except VersionError as exc:
            problems.append(Problem(reason=str(exc), location=f"installed.{app_id}"))
    platform: Version | None = None
    try:
        platform = parse_version(platform_version)
    except VersionError as exc:
        problems.append(Problem(reason=str(exc), location="platform_version"))
    if problems or platform is None:
        raise RequirementError(problems, title="invalid resolution request")
    return platform
