"""The resolver's rules and its explanations, message for message."""

from __future__ import annotations

import pytest

from apprt.resolve import (
    Candidate,
    InMemoryIndex,
    InstallPlan,
    RequirementError,
    ResolutionError,
    dependency_order,
    resolve,
)

C = Candidate


def names(plan: InstallPlan) -> list[str]:
    return [str(step) for step in plan.steps]


def reasons(error: pytest.ExceptionInfo[ResolutionError]) -> list[str]:
    return [p.reason for p in error.value.problems]


CLASH = InMemoryIndex(
    [
        C("com.a", "2.0.0", {"com.c": "^1"}, "^1"),
        C("com.b", "1.4.0", {"com.c": "^2"}, "^1"),
        C("com.c", "1.0.0", {}, "^1"),
        C("com.c", "2.0.0", {}, "^1"),
    ]
)


# -- plans ---------------------------------------------------------------------------


def test_newest_versions_dependencies_first() -> None:
    index = InMemoryIndex(
        [
            C("com.sales", "1.0.0", {"com.crm": "^1"}, "^1"),
            C("com.sales", "1.1.0", {"com.crm": "^1.2", "com.auth": "~2.0"}, "^1"),
            C("com.crm", "1.1.0", {}, "^1"),
            C("com.crm", "1.4.0", {"com.auth": "^2"}, "^1"),
            C("com.crm", "2.0.0", {}, "^1"),
            C("com.auth", "2.0.3", {}, "^1"),
            C("com.auth", "2.1.0", {}, "^1"),
        ]
    )
    plan = resolve({"com.sales": "^1"}, index, platform_version="1.0.0")
    assert names(plan) == ["com.auth 2.0.3", "com.crm 1.4.0", "com.sales 1.1.0"]
    assert sorted(plan.resolved) == ["com.auth", "com.crm", "com.sales"]
    assert plan.upgrades == {}


def test_ties_in_app_id_order_and_deterministic() -> None:
    index = InMemoryIndex(
        [
            C("com.z", "1.0.0", {"com.y": "*", "com.b": "*"}, "*"),
            C("com.y", "1.0.0", {}, "*"),
            C("com.b", "1.0.0", {}, "*"),
            C("com.m", "1.0.0", {}, "*"),
        ]
    )
    plan = resolve({"com.z": "*", "com.m": "*"}, index)
    assert names(plan) == ["com.b 1.0.0", "com.m 1.0.0", "com.y 1.0.0", "com.z 1.0.0"]
    assert names(resolve({"com.m": "*", "com.z": "*"}, index)) == names(plan)


def test_dependency_cycle_is_one_block_in_app_id_order() -> None:
    index = InMemoryIndex(
        [
            C("com.top", "1.0.0", {"com.q": "^1"}, "*"),
            C("com.q", "1.0.0", {"com.p": "^1"}, "*"),
            C("com.p", "1.0.0", {"com.q": "^1", "com.base": "^1"}, "*"),
            C("com.base", "1.0.0", {}, "*"),
        ]
    )
    plan = resolve({"com.top": "^1"}, index)
    assert names(plan) == ["com.base 1.0.0", "com.p 1.0.0", "com.q 1.0.0", "com.top 1.0.0"]


def test_backtracks_to_an_older_version_that_fits() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {"com.c": "^1"}, "*"),
            C("com.a", "1.1.0", {"com.c": "^2"}, "*"),
            C("com.b", "1.0.0", {"com.c": "^1"}, "*"),
            C("com.c", "1.5.0", {}, "*"),
            C("com.c", "2.0.0", {}, "*"),
        ]
    )
    plan = resolve({"com.a": "^1", "com.b": "^1"}, index)
    assert names(plan) == ["com.c 1.5.0", "com.a 1.0.0", "com.b 1.0.0"]


def test_platform_excluded_versions_are_never_chosen() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {}, "^1"),
            C("com.a", "1.1.0", {}, "^2"),
        ]
    )
    assert names(resolve({"com.a": "^1"}, index, platform_version="1.3.0")) == ["com.a 1.0.0"]
    assert names(resolve({"com.a": "^1"}, index, platform_version="2.0.0")) == ["com.a 1.1.0"]


def test_yanked_only_when_pinned_exactly() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {}, "*"),
            C("com.a", "1.1.0", {}, "*", yanked=True),
        ]
    )
    assert names(resolve({"com.a": "^1"}, index)) == ["com.a 1.0.0"]
    assert names(resolve({"com.a": "1.1.0"}, index)) == ["com.a 1.1.0"]
    assert names(resolve({"com.a": "=1.1.0"}, index)) == ["com.a 1.1.0"]
    # A dependency pinning it exactly counts too.
    index.add(C("com.b", "1.0.0", {"com.a": "=1.1.0"}, "*"))
    assert names(resolve({"com.b": "*"}, index)) == ["com.a 1.1.0", "com.b 1.0.0"]


def test_installed_version_is_kept_when_it_fits() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {"com.c": "^1"}, "*"),
            C("com.c", "1.2.0", {}, "*"),
            C("com.c", "1.9.0", {}, "*"),
        ]
    )
    plan = resolve({"com.a": "^1"}, index, installed={"com.c": "1.2.0"})
    assert names(plan) == ["com.a 1.0.0"]
    assert plan.resolved["com.c"].version == "1.2.0"
    # Asking for an installed app again is a no-op.
    plan = resolve({"com.c": "^1"}, index, installed={"com.c": "1.2.0"})
    assert plan.steps == []


def test_installed_app_moves_when_a_new_requirement_excludes_it() -> None:
    index = InMemoryIndex(
        [
            C("com.b", "1.0.0", {"com.c": "^2"}, "*"),
            C("com.c", "1.0.0", {}, "*"),
            C("com.c", "2.0.0", {}, "*"),
            C("com.c", "2.1.0", {}, "*"),
        ]
    )
    plan = resolve({"com.b": "^1"}, index, installed={"com.c": "1.0.0"})
    assert names(plan) == ["com.c 2.1.0", "com.b 1.0.0"]
    assert plan.upgrades == {"com.c": "1.0.0"}


def test_installed_yanked_or_platform_excluded_version_is_kept() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {}, "^2", yanked=True),
            C("com.a", "1.1.0", {}, "^1"),
            C("com.b", "1.0.0", {"com.a": "^1"}, "^1"),
        ]
    )
    plan = resolve({"com.b": "^1"}, index, installed={"com.a": "1.0.0"})
    assert names(plan) == ["com.b 1.0.0"]
    assert plan.resolved["com.a"].version == "1.0.0"


def test_held_installed_app_is_not_moved_to_make_room() -> None:
    # com.a 2.0.0 would accept com.c ^2, but com.a is installed and not asked for.
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {"com.c": "^1"}, "*"),
            C("com.a", "2.0.0", {"com.c": "^2"}, "*"),
            C("com.b", "1.0.0", {"com.c": "^2"}, "*"),
            C("com.c", "1.0.0", {}, "*"),
            C("com.c", "2.0.0", {}, "*"),
        ]
    )
    installed = {"com.a": "1.0.0", "com.c": "1.0.0"}
    with pytest.raises(ResolutionError) as error:
        resolve({"com.b": "^1"}, index, installed=installed)
    assert reasons(error) == [
        "com.a 1.0.0 (installed) needs com.c ^1, but com.b 1.0.0 needs com.c ^2 (because you "
        "asked for com.b ^1); no version of com.c satisfies both ^1 and ^2"
    ]
    assert error.value.problems[0].hint == (
        "com.a is kept at the installed version; add com.a to the request so it may be "
        "upgraded too, or relax the other range"
    )
    # Named in the request, it may move.
    plan = resolve({"com.b": "^1", "com.a": "*"}, index, installed=installed)
    assert names(plan) == ["com.c 2.0.0", "com.a 2.0.0", "com.b 1.0.0"]
    assert plan.upgrades == {"com.a": "1.0.0", "com.c": "1.0.0"}


def test_installed_app_missing_from_the_index_is_kept() -> None:
    index = InMemoryIndex([C("com.a", "1.0.0", {"com.gone": "^1"}, "*")])
    plan = resolve({"com.a": "^1"}, index, installed={"com.gone": "1.3.0"})
    assert names(plan) == ["com.a 1.0.0"]
    assert plan.resolved["com.gone"].version == "1.3.0"


def test_dependency_order_helper() -> None:
    resolved = {
        "com.b": C("com.b", "1.0.0", {"com.a": "^1"}, "*"),
        "com.a": C("com.a", "1.0.0", {"com.x": "^1"}, "*"),  # com.x not in the plan
    }
    assert [c.app_id for c in dependency_order(resolved)] == ["com.a", "com.b"]


# -- explanations --------------------------------------------------------------------


def test_clash_names_both_chains() -> None:
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2", "com.b": "^1"}, CLASH)
    assert error.value.status_code == 409
    assert error.value.title == "no install plan"
    assert reasons(error) == [
        "com.a 2.0.0 needs com.c ^1 (because you asked for com.a ^2), but com.b 1.4.0 needs "
        "com.c ^2 (because you asked for com.b ^1); no version of com.c satisfies both ^1 and ^2"
    ]
    problem = error.value.problems[0]
    assert problem.location == "com.c"
    assert problem.hint == (
        "relax one of these ranges, or ask for other versions of the apps that declare them"
    )


def test_clash_groups_versions_that_declare_the_same_range() -> None:
    index = InMemoryIndex(
        [
            *CLASH.candidates("com.b"),
            *CLASH.candidates("com.c"),
            C("com.a", "2.0.0", {"com.c": "^1"}, "^1"),
            C("com.a", "2.1.0", {"com.c": "^1"}, "^1"),
            C("com.a", "2.2.0", {"com.c": "^1"}, "^1"),
            C("com.a", "2.3.0", {"com.c": "^1"}, "^1"),
            C("com.a", "2.4.0", {"com.c": "^1"}, "^1"),
            C("com.b", "1.3.0", {"com.c": "^2"}, "^1"),
        ]
    )
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2", "com.b": "^1"}, index)
    assert reasons(error) == [
        "com.a 2.0.0, 2.1.0, 2.2.0 and 2 more versions need com.c ^1 (because you asked for "
        "com.a ^2), but com.b 1.3.0 and 1.4.0 need com.c ^2 (because you asked for com.b ^1); "
        "no version of com.c satisfies both ^1 and ^2"
    ]


def test_clash_deep_chain() -> None:
    index = InMemoryIndex(
        [
            *(c for app in ("com.b", "com.c") for c in CLASH.candidates(app)),
            C("com.top", "1.0.0", {"com.mid": "^1"}, "*"),
            C("com.mid", "1.2.0", {"com.low": "~1.2"}, "*"),
            C("com.low", "1.2.5", {"com.c": "^1"}, "*"),
        ]
    )
    with pytest.raises(ResolutionError) as error:
        resolve({"com.top": "^1", "com.b": "^1"}, index)
    assert reasons(error) == [
        "com.b 1.4.0 needs com.c ^2 (because you asked for com.b ^1), but com.low 1.2.5 needs "
        "com.c ^1 (because you asked for com.top ^1, com.top 1.0.0 needs com.mid ^1 and "
        "com.mid 1.2.0 needs com.low ~1.2); no version of com.c satisfies both ^1 and ^2"
    ]


def test_clash_between_request_and_dependency() -> None:
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2", "com.c": "^2"}, CLASH)
    assert reasons(error) == [
        "com.a 2.0.0 needs com.c ^1 (because you asked for com.a ^2), but you asked for "
        "com.c ^2; no version of com.c satisfies both ^1 and ^2"
    ]


def test_unknown_app() -> None:
    with pytest.raises(ResolutionError) as error:
        resolve({"com.x": "^1"}, CLASH)
    assert reasons(error) == ["you asked for com.x ^1, but there is no app com.x in the registry"]
    assert error.value.problems[0].hint == "check the app id, or publish com.x first"


def test_unknown_dependency() -> None:
    index = InMemoryIndex([C("com.a", "2.0.0", {"com.x": "^1"}, "*")])
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2"}, index)
    assert reasons(error) == [
        "com.a 2.0.0 needs com.x ^1 (because you asked for com.a ^2), but there is no app "
        "com.x in the registry"
    ]


def test_no_version_in_range_lists_the_available_ones() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {}, "*"),
            C("com.a", "2.0.0", {}, "*"),
            C("com.a", "2.1.0", {}, "*", yanked=True),
        ]
    )
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^3"}, index)
    assert reasons(error) == [
        "you asked for com.a ^3; no version of com.a matches ^3 "
        "(available: 1.0.0, 2.0.0, 2.1.0 (yanked))"
    ]
    assert error.value.problems[0].hint == (
        "ask for a range that includes one of the available versions"
    )


def test_no_version_in_range_for_a_dependency() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "2.0.0", {"com.d": "^1"}, "*"),
            C("com.d", "1.0.0", {"com.e": "^3"}, "*"),
            C("com.e", "1.0.0", {}, "*"),
        ]
    )
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2"}, index)
    assert reasons(error) == [
        "com.d 1.0.0 needs com.e ^3 (because you asked for com.a ^2 and com.a 2.0.0 needs "
        "com.d ^1); no version of com.e matches ^3 (available: 1.0.0)"
    ]


def test_platform_is_named_when_it_is_why_nothing_fits() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {}, "^1"),
            C("com.a", "2.0.0", {}, "^2"),
            C("com.a", "2.1.0", {}, "^2"),
        ]
    )
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2"}, index, platform_version="1.4.0")
    assert reasons(error) == [
        "you asked for com.a ^2; com.a 2.0.0 and 2.1.0 would fit but need platform API ^2, "
        "and this platform's API is 1.4.0"
    ]
    assert error.value.problems[0].hint == (
        "ask for a version of com.a that supports platform API 1.4.0, or wait for one"
    )


def test_yanked_is_named_when_it_is_why_nothing_fits() -> None:
    index = InMemoryIndex([C("com.a", "2.0.0", {}, "*", yanked=True)])
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2"}, index)
    assert reasons(error) == ["you asked for com.a ^2; com.a 2.0.0 would fit but is yanked"]
    assert error.value.problems[0].hint == (
        "pin an exact version (=2.0.0) to install a yanked version"
    )


def test_error_string_lists_every_problem() -> None:
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^2", "com.b": "^1"}, CLASH)
    assert str(error.value).startswith("com.c: com.a 2.0.0 needs com.c ^1")


def test_malformed_input_is_a_400() -> None:
    with pytest.raises(RequirementError) as error:
        resolve({"com.a": "not a range!", "com.b": "^1"}, CLASH, platform_version="one")
    assert error.value.status_code == 400
    assert [p.location for p in error.value.problems] == ["requested.com.a", "platform_version"]
    assert isinstance(error.value, ResolutionError)


def test_malformed_index_entries_are_skipped() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.1.0", {"com.b": "not a range!"}, "*"),
            C("com.a", "1.0.0", {}, "*"),
            C("com.a", "bogus", {}, "*"),
        ]
    )
    assert names(resolve({"com.a": "^1"}, index)) == ["com.a 1.0.0"]


def test_candidate_hash_and_str() -> None:
    a = C("com.a", "1.0.0", {"com.b": "^1"}, "^1")
    assert hash(a) == hash(C("com.a", "1.0.0", {}, "*"))
    assert {a: 1}[C("com.a", "1.0.0", {"com.b": "^1"}, "^1")] == 1
    assert str(a) == "com.a 1.0.0"


# -- dead ends (clashes with the request deep down a chain) --------------------------


def chain_index(depth: int, versions: int) -> InMemoryIndex:
    """``com.l00`` needs ``com.l01`` ^2 needs ... ``com.lNN`` ^2, every level with
    ``versions`` 2.x versions, the last level with 1.0.0 too."""
    candidates = []
    for level in range(depth):
        for minor in range(versions):
            deps = {f"com.l{level + 1:02d}": "^2"} if level + 1 < depth else {}
            candidates.append(C(f"com.l{level:02d}", f"2.{minor}.0", deps, "*"))
    candidates.append(C(f"com.l{depth - 1:02d}", "1.0.0", {}, "*"))
    return InMemoryIndex(candidates)


def test_clash_with_the_request_far_down_a_chain_is_fast_and_explained() -> None:
    index = chain_index(depth=30, versions=5)
    with pytest.raises(ResolutionError) as error:
        resolve({"com.l00": "^2", "com.l29": "^1"}, index)
    # Without pruning dead ends, resolvelib retries every combination above the clash.
    assert reasons(error) == [
        "com.l28 2.4.0 needs com.l29 ^2 (because you asked for com.l00 ^2, com.l00 2.4.0 "
        "needs com.l01 ^2, com.l01 2.4.0 needs com.l02 ^2, 24 more steps, com.l26 2.4.0 "
        "needs com.l27 ^2 and com.l27 2.4.0 needs com.l28 ^2), but you asked for com.l29 ^1; "
        "no version of com.l29 satisfies both ^2 and ^1 "
        "(the other versions at each step are ruled out too)"
    ]
    problem = error.value.problems[0]
    assert problem.location == "com.l29"
    assert problem.hint == (
        "relax one of these ranges, or ask for other versions of the apps that declare them"
    )


def test_dead_end_through_the_platform() -> None:
    index = InMemoryIndex(
        [
            C("com.a", "1.0.0", {"com.b": "^1"}, "*"),
            C("com.b", "1.0.0", {}, "^2"),
            C("com.b", "1.1.0", {}, "^2"),
        ]
    )
    with pytest.raises(ResolutionError) as error:
        resolve({"com.a": "^1"}, index, platform_version="1.0.0")
    assert reasons(error) == [
        "com.a 1.0.0 needs com.b ^1 (because you asked for com.a ^1), but com.b 1.0.0 and "
        "1.1.0 need platform API ^2, and this platform's API is 1.0.0"
    ]


def test_dead_end_versions_are_skipped_for_one_that_works() -> None:
    index = chain_index(depth=10, versions=3)
    index.add(C("com.l00", "2.9.0", {"com.l09": "^1"}, "*"))  # does not go through the chain
    plan = resolve({"com.l00": "^2", "com.l09": "^1"}, index)
    assert names(plan) == ["com.l09 1.0.0", "com.l00 2.9.0"]


def test_cycles_do_not_make_dead_ends() -> None:
    index = InMemoryIndex(
        [
            C("com.p", "1.0.0", {"com.q": "^1"}, "*"),
            C("com.q", "1.0.0", {"com.p": "^1", "com.r": "^1"}, "*"),
            C("com.r", "1.0.0", {}, "*"),
        ]
    )
    plan = resolve({"com.p": "^1", "com.r": "^1"}, index)
    assert names(plan) == ["com.r 1.0.0", "com.p 1.0.0", "com.q 1.0.0"]
