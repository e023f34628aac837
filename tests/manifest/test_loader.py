from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apprt.errors import ManifestError
from apprt.manifest import load_manifest, parse_manifest
from tests.manifest.conftest import MINIMAL


def problems_of(text: str | bytes) -> list[tuple[str, str, str]]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    return [(p.location, p.reason, p.hint) for p in info.value.problems]


def test_minimal_manifest_gets_defaults() -> None:
    m = parse_manifest(MINIMAL)
    assert m.tenancy == "isolated"
    assert m.resources.memory_mb == 256
    assert m.backend is not None and m.backend.health == "/healthz"
    assert m.permissions == []


def test_every_problem_is_listed_at_once() -> None:
    text = (
        MINIMAL.replace('"com.example.hello"', '"Hello World"').replace('"1.0.0"', '"1.0"')
        + "\n[resources]\nmemory_mb = 1\n"
    )
    locations = [loc for loc, _, _ in problems_of(text)]
    assert locations == ["id", "version", "resources.memory_mb"]


def test_pattern_errors_do_not_dump_regexes() -> None:
    ((loc, reason, hint),) = problems_of(MINIMAL.replace('"com.example.hello"', '"Hello"'))
    assert loc == "id"
    assert reason == "'Hello' is not a valid id"
    assert "reverse-DNS" in hint


def test_unknown_field_suggests_the_close_one() -> None:
    ((loc, reason, hint),) = problems_of('descripton = "typo"\n' + MINIMAL)
    assert (loc, reason) == ("descripton", "unknown field 'descripton'")
    assert hint == "did you mean 'description'?"


def test_unknown_nested_field_lists_allowed_ones() -> None:
    text = MINIMAL + "zzz = 1\n"  # lands in [backend]
    ((loc, _, hint),) = problems_of(text)
    assert loc == "backend.zzz"
    assert "entry" in hint and "requirements" in hint


def test_missing_required_field() -> None:
    text = MINIMAL.replace('platform = "^1.0"\n', "")
    assert problems_of(text) == [("platform", "required field is missing", "add platform = ...")]


def test_invalid_toml_reports_line_and_column() -> None:
    ((loc, reason, _),) = problems_of('id = "x"\nname = \n')
    assert loc.startswith("line 2")
    assert reason.startswith("invalid TOML")


def test_non_utf8_and_oversized_input() -> None:
    assert "not UTF-8" in problems_of(b"id = '\xff'")[0][1]
    assert "more than" in problems_of(b"#" * 300_000)[0][1]


def test_load_manifest_from_directory(tmp_path: Path) -> None:
    (tmp_path / "app.toml").write_text(MINIMAL)
    assert load_manifest(tmp_path).id == "com.example.hello"
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "missing")
    assert "apprt app init" in info.value.problems[0].hint


def test_problem_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "app.toml").write_text(MINIMAL.replace('"MIT"', '"Nope"'))
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    (problem,) = info.value.problems
    assert problem.file == str(tmp_path / "app.toml")
    assert problem.location == "license"


# Property-based: whatever the input, parsing either succeeds or raises ManifestError
# with at least one located problem, never anything else.

toml_scalars = st.one_of(
    st.text(max_size=20), st.integers(), st.floats(allow_nan=False), st.booleans()
)
field_names = st.sampled_from(
    [
        "id",
        "name",
        "version",
        "description",
        "publisher",
        "license",
        "platform",
        "tenancy",
        "permissions",
        "dependencies",
        "backend",
        "frontend",
        "resources",
        "config",
        "tools",
        "icon",
        "tags",
        "homepage",
        "bogus",
    ]
)


def to_toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(to_toml_value(v) for v in value) + "]"
    return repr(value)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable, max_size=300))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parse_manifest(text)
    except ManifestError as exc:
        assert exc.problems and all(p.reason for p in exc.problems)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(field_names, st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))))
def test_arbitrary_fields_never_crash(fields: dict[str, object]) -> None:
    text = "\n".join(f"{k} = {to_toml_value(v)}" for k, v in fields.items())
    try:
        parse_manifest(text)
    except ManifestError as exc:
        assert exc.problems
        assert all(p.reason and p.file == "app.toml" for p in exc.problems)


@settings(max_examples=100, deadline=None)
@given(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z0-9][a-z0-9-]{0,10}){1,3}", fullmatch=True),
    st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
    st.lists(
        st.sampled_from(
            [
                "state",
                "dataroom:read",
                "companions:message",
                "tools:call:crm.*",
                "events:publish:sales.updated",
                "network:api.example.com:443",
            ]
        ),
        unique=True,
    ),
)
def test_generated_valid_manifests_parse(
    app_id: str, version: tuple[int, int, int], permissions: list[str]
) -> None:
    text = (
        MINIMAL.replace('"com.example.hello"', f'"{app_id}"')
        .replace('"1.0.0"', '"{}.{}.{}"'.format(*version))
        .replace(
            'platform = "^1.0"',
            f'platform = "^1.0"\npermissions = {permissions!r}'.replace("'", '"'),
        )
    )
    m = parse_manifest(text)
    assert m.id == app_id
    assert tuple(m.semver)[:3] == version
    assert [str(p) for p in m.parsed_permissions] == permissions
