"""Properties over random small registries.

Whatever the registry (acyclic or not), request and installed set: ``resolve``
returns a plan that satisfies every range and the platform, with dependencies before
dependents (when there is no cycle), or raises :class:`ResolutionError`, never
anything else. Without installed apps a brute-force search over every assignment
agrees on whether a plan exists.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apprt.resolve import Candidate, InMemoryIndex, InstallPlan, ResolutionError, resolve
from apprt.resolve._provider import exact_pin
from apprt.versioning import parse_range, parse_version

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "3.0.0"]
RANGES = ["*", "^1", "^2", "~1.1", ">=1.1.0", "<2", ">=2 <3", "1.1.0", "=2.0.0", "^3", "1.x || 3.x"]
PLATFORM_RANGES = ["*", "^1", "^2", ">=1.5"]
PLATFORMS = ["1.0.0", "1.5.0", "2.0.0"]
APPS = [f"com.a{i}" for i in range(5)]


@st.composite
def registries(draw: st.DrawFn, cyclic: bool = False) -> list[Candidate]:
    count = draw(st.integers(1, len(APPS)))
    candidates = []
    for i in range(count):
        versions = draw(st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=4, unique=True))
        for version in versions:
            # Dependencies only on later apps (acyclic), sometimes on an unknown one.
            targets = [*(APPS[:count] if cyclic else APPS[i + 1 : count]), "com.unknown"]
            deps = draw(
                st.dictionaries(st.sampled_from(targets), st.sampled_from(RANGES), max_size=2)
            )
            candidates.append(
                Candidate(
                    APPS[i],
                    version,
                    deps,
                    draw(st.sampled_from(PLATFORM_RANGES)),
                    draw(st.integers(0, 4)) == 0,  # yanked, now and then
                )
            )
    return candidates


def requests(apps: list[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(
        st.sampled_from([*apps, "com.unknown"]), st.sampled_from(RANGES), min_size=1, max_size=3
    )


def check_plan(
    plan: InstallPlan,
    requested: Mapping[str, str],
    installed: Mapping[str, str],
    platform: str,
    *,
    ordered: bool = True,
) -> None:
    resolved = plan.resolved
    for app_id, rng in requested.items():
        assert parse_range(rng).contains(resolved[app_id].version), (app_id, rng)
    pins: dict[str, set[str]] = {}
    for app_id, rng in requested.items():
        if (pin := exact_pin(rng)) is not None:
            pins.setdefault(app_id, set()).add(str(pin))
    for candidate in resolved.values():
        for dep, rng in candidate.dependencies.items():
            assert dep in resolved, (candidate, dep)
            assert parse_range(rng).contains(resolved[dep].version), (candidate, dep, rng)
            if (pin := exact_pin(rng)) is not None:
                pins.setdefault(dep, set()).add(str(pin))
    for app_id in installed:
        assert app_id in resolved
    position = {step.app_id: i for i, step in enumerate(plan.steps)}
    for step in plan.steps:
        assert installed.get(step.app_id) != step.version
        assert parse_range(step.platform).contains(parse_version(platform)), step
        if step.yanked:
            assert step.version in pins.get(step.app_id, set()), step
        for dep in step.dependencies:
            if ordered and dep in position:
                assert position[dep] < position[step.app_id], (dep, step)
    for app_id, candidate in resolved.items():
        if app_id not in position:
            assert installed.get(app_id) == candidate.version
    # Installed apps nobody asked for move only when a requirement excludes them.
    for app_id, version in installed.items():
        if app_id in requested or resolved[app_id].version == version:
            continue
        assert any(
            app_id in c.dependencies and not parse_range(c.dependencies[app_id]).contains(version)
            for c in resolved.values()
        ), app_id
    assert plan.upgrades == {
        s.app_id: installed[s.app_id] for s in plan.steps if s.app_id in installed
    }


def brute_force_exists(
    candidates: list[Candidate], requested: Mapping[str, str], platform: str
) -> bool:
    """Whether any assignment (each app absent or at one version) is a valid plan."""
    by_app: dict[str, list[Candidate | None]] = {}
    for c in candidates:
        by_app.setdefault(c.app_id, [None]).append(c)
    apps = sorted(by_app)
    pv = parse_version(platform)
    for choice in itertools.product(*(by_app[a] for a in apps)):
        chosen = {c.app_id: c for c in choice if c is not None}
        reqs = list(requested.items()) + [
            (d, r) for c in chosen.values() for d, r in c.dependencies.items()
        ]
        if not all(a in chosen and parse_range(r).contains(chosen[a].version) for a, r in reqs):
            continue
        if not all(parse_range(c.platform).contains(pv) for c in chosen.values()):
            continue
        if all(
            not c.yanked
            or any(a == c.app_id and exact_pin(r) == parse_version(c.version) for a, r in reqs)
            for c in chosen.values()
        ):
            return True
    return False


@PROPERTY
@given(data=st.data())
def test_plans_are_valid_and_errors_are_resolution_errors(data: st.DataObject) -> None:
    candidates = data.draw(registries())
    apps = sorted({c.app_id for c in candidates})
    requested = data.draw(requests(apps))
    platform = data.draw(st.sampled_from(PLATFORMS))
    installed = data.draw(
        st.dictionaries(st.sampled_from(apps), st.sampled_from(VERSIONS), max_size=2)
    )
    try:
        plan = resolve(
            requested, InMemoryIndex(candidates), installed=installed, platform_version=platform
        )
    except ResolutionError as error:
        assert error.problems
        assert all(p.reason and p.hint for p in error.problems)
        return
    check_plan(plan, requested, installed, platform)


@PROPERTY
@given(data=st.data())
def test_a_plan_exists_exactly_when_brute_force_finds_one(data: st.DataObject) -> None:
    candidates = data.draw(registries())
    apps = sorted({c.app_id for c in candidates})
    requested = data.draw(requests(apps))
    platform = data.draw(st.sampled_from(PLATFORMS))
    try:
        plan = resolve(requested, InMemoryIndex(candidates), platform_version=platform)
    except ResolutionError:
        assert not brute_force_exists(candidates, requested, platform)
        return
    check_plan(plan, requested, {}, platform)
    assert brute_force_exists(candidates, requested, platform)


@PROPERTY
@given(data=st.data())
def test_cyclic_registries_give_valid_plans_or_resolution_errors(data: st.DataObject) -> None:
    candidates = data.draw(registries(cyclic=True))
    apps = sorted({c.app_id for c in candidates})
    requested = data.draw(requests(apps))
    platform = data.draw(st.sampled_from(PLATFORMS))
    installed = data.draw(
        st.dictionaries(st.sampled_from(apps), st.sampled_from(VERSIONS), max_size=2)
    )
    try:
        plan = resolve(
            requested, InMemoryIndex(candidates), installed=installed, platform_version=platform
        )
    except ResolutionError as error:
        assert error.problems
        return
    check_plan(plan, requested, installed, platform, ordered=False)
