from __future__ import annotations

import pytest

from apprt.errors import ManifestError
from apprt.manifest import parse_manifest
from tests.manifest.conftest import MINIMAL


def reasons(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    return [f"{p.location}: {p.reason}" for p in info.value.problems]


def test_full_example_from_docs_parses() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "manifest.md").read_text()
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    m = parse_manifest(block)
    assert m.frontend is not None and m.frontend.shared["preact"].singleton
    assert m.dependencies == {"com.example.crm-connector": "^1.2"}
    assert [t.name for t in m.tools] == ["sales.top_deals"]
    assert [str(p) for p in m.sensitive_permissions] == ["network:api.example.com:443"]


def test_requirements_must_be_exact_pins() -> None:
    for req in ["starlette", "starlette>=0.40", "starlette==0.*", "x @ https://e.com/x.whl"]:
        text = MINIMAL + f'requirements = ["{req}"]\n'
        (reason,) = reasons(text)
        assert reason.startswith("backend.requirements[0]")
    ok = parse_manifest(MINIMAL + 'requirements = ["starlette==0.41.3", "anyio[trio]==4.6.2"]\n')
    assert ok.backend is not None and len(ok.backend.requirements) == 2


def test_needs_backend_or_frontend() -> None:
    text = MINIMAL.replace('[backend]\nentry = "hello.main:app"\n', "")
    assert reasons(text) == [": an app needs a [backend], a [frontend], or both"]


def test_cross_field_rules() -> None:
    text = MINIMAL.replace(
        'platform = "^1.0"',
        'platform = "^1.0"\npermissions = ["state", "state"]'
        '\n[dependencies]\n"com.example.hello" = "^1"',
    )
    (reason,) = reasons(text)
    assert "depend on itself" in reason and "declared twice" in reason


def test_bad_ranges_and_versions() -> None:
    text = MINIMAL.replace('"^1.0"', '"^^1"')
    (reason,) = reasons(text)
    assert reason.startswith("platform: '^^1' is not a valid version range")


def test_shared_dependency_bundle_must_satisfy_range() -> None:
    text = MINIMAL + (
        '[frontend]\nentry = "index.js"\n[frontend.shared.preact]\nversion = "^10.0.0"\n'
        '[frontend.shared.preact.bundle]\nversion = "11.0.0"\npath = "vendor/preact.js"\n'
    )
    (reason,) = reasons(text)
    assert "outside the declared range" in reason


def test_frontend_paths_stay_inside_the_package() -> None:
    for entry in ["../x.js", "/abs.js", "a/../../b.js", "index.css"]:
        text = MINIMAL + f'[frontend]\nentry = "{entry}"\n'
        assert reasons(text), entry


def test_config_schema_is_checked() -> None:
    bad_schema = MINIMAL + '[config]\ntype = "object"\n[config.properties.limit]\ntype = "nope"\n'
    (reason,) = reasons(bad_schema)
    assert reason.startswith("config: not a valid JSON Schema")
    bad_default = MINIMAL + (
        '[config]\ntype = "object"\n[config.properties.limit]\ntype = "integer"\ndefault = "ten"\n'
    )
    (reason,) = reasons(bad_default)
    assert "config.properties.limit.default is invalid" in reason


def test_tools_need_a_backend_and_unique_names() -> None:
    tool = '[[tools]]\nname = "a.b"\ndescription = "d"\npath = "/t"\n'
    text = MINIMAL + tool + tool
    (reason,) = reasons(text)
    assert "tool 'a.b' is declared twice" in reason


def test_license_is_canonicalized() -> None:
    m = parse_manifest(MINIMAL.replace('"MIT"', '"mit OR apache-2.0"'))
    assert m.license == "MIT OR Apache-2.0"


def test_permission_with_reason_and_normalization() -> None:
    text = MINIMAL.replace(
        'platform = "^1.0"',
        'platform = "^1.0"\npermissions = ["NETWORK:API.Example.com:0443", '
        '{permission = "state", reason = "remember notes"}]',
    )
    # NETWORK upper case is not a known kind: kinds are case-sensitive on purpose.
    (reason,) = reasons(text)
    assert "unknown permission" in reason
    text = text.replace("NETWORK:API.Example.com:0443", "network:API.Example.com:0443")
    m = parse_manifest(text)
    assert [r.permission for r in m.permissions] == ["network:api.example.com:443", "state"]
    assert m.permissions[1].reason == "remember notes"
