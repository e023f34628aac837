from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprt.versioning import VersionError, max_satisfying, parse_range, parse_version


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0+", "", "1.0.0.0"])
def test_rejects_non_semver(text: str) -> None:
    with pytest.raises(VersionError, match=r"SemVer 2\.0"):
        parse_version(text)


@pytest.mark.parametrize(
    ("rng", "inside", "outside"),
    [
        ("^1.2.0", ["1.2.0", "1.9.9"], ["2.0.0", "1.1.9", "1.3.0-rc.1"]),
        ("~1.4", ["1.4.0", "1.4.9"], ["1.5.0"]),
        (">=1.0.0 <2.0.0", ["1.0.0", "1.99.0"], ["2.0.0", "0.9.0"]),
        ("1.x || ^3.1", ["1.0.0", "3.2.0"], ["2.0.0"]),
        ("*", ["0.0.1", "9.9.9"], ["1.0.0-alpha"]),
        ("", ["1.0.0"], []),
        (">=2.0.0-rc.1 <3", ["2.0.0-rc.2", "2.5.0"], ["2.1.0-rc.1"]),
    ],
)
def test_npm_range_semantics(rng: str, inside: list[str], outside: list[str]) -> None:
    r = parse_range(rng)
    assert all(r.contains(v) for v in inside)
    assert not any(r.contains(v) for v in outside)


def test_bad_range_explains_syntax() -> None:
    with pytest.raises(VersionError, match="npm syntax"):
        parse_range("^^1")


def test_max_satisfying() -> None:
    assert str(max_satisfying(["1.0.0", "1.4.0", "2.0.0"], "^1")) == "1.4.0"
    assert max_satisfying(["2.0.0"], "^1") is None


versions = st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))


@given(versions, versions)
def test_caret_range_matches_semver_rules(
    base: tuple[int, int, int], v: tuple[int, int, int]
) -> None:
    rng = parse_range("^{}.{}.{}".format(*base))
    inside = rng.contains("{}.{}.{}".format(*v))
    if base[0] > 0:
        expected = v[0] == base[0] and v >= base
    elif base[1] > 0:
        expected = v[:2] == base[:2] and v >= base
    else:
        expected = v == base
    assert inside == expected


@given(versions)
def test_version_roundtrip(v: tuple[int, int, int]) -> None:
    text = "{}.{}.{}".format(*v)
    assert str(parse_version(text)) == text
