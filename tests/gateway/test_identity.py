"""Signed identity headers: what the gateway signs, apps verify (``apprt.sdk``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprt.errors import ApprtError
from apprt.gateway.identity import IdentitySigner, identity_headers, load_or_create_secret
from apprt.sdk import IdentityError, identity_from_scope, verify_identity
from apprt.sdk.identity import derive_key
from apprt.settings import Settings

KEY = derive_key(b"s" * 32, "i0123456789ab")
_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=","),
    max_size=20,
)


def _as_dict(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {n.decode(): v.decode() for n, v in headers}


@given(
    org=_text,
    user=_text,
    roles=st.lists(_text.filter(bool), max_size=3),
    grants=st.lists(_text.filter(bool), max_size=3),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    target=_text.map(lambda t: "/" + t.replace(" ", "")),
)
def test_whatever_is_signed_verifies_and_any_change_does_not(
    org: str, user: str, roles: list[str], grants: list[str], method: str, target: str
) -> None:
    signer = IdentitySigner(KEY, org=org, user=user, roles=roles, grants=grants, config="{}")
    headers = signer.headers(method, target, now=1_000_000)
    assert headers == identity_headers(
        KEY, org=org, user=user, roles=roles, grants=grants, config="{}",
        method=method, target=target, now=1_000_000,
    )  # fmt: skip
    who = verify_identity(headers, KEY, method=method, target=target, now=1_000_000)
    assert (who.org, who.user, who.roles, who.grants) == (org, user, tuple(roles), tuple(grants))
    for name in ("x-apprt-org", "x-apprt-user", "x-apprt-roles", "x-apprt-grants"):
        tampered = {**_as_dict(headers), name: "tampered"}
        if tampered[name] == _as_dict(headers)[name]:
            continue
        with pytest.raises(IdentityError):
            verify_identity(tampered, KEY, method=method, target=target, now=1_000_000)
    with pytest.raises(IdentityError):
        verify_identity(headers, KEY, method=method, target=target + "x", now=1_000_000)


def test_refusals_say_why() -> None:
    good = _as_dict(
        IdentitySigner(KEY, org="a", user="u", roles=(), grants=(), config="{}").headers(
            "GET", "/", now=1000
        )
    )
    cases = {
        "no signed identity": {},
        "malformed": {**good, "x-apprt-timestamp": "soon"},
        "ago": good,  # stale: verified at a later time
    }
    for reason, headers in cases.items():
        with pytest.raises(IdentityError, match=reason):
            verify_identity(headers, KEY, method="GET", target="/", now=5000)
    doubled = [(b"x-apprt-org", b"a"), (b"X-Apprt-Org", b"b")]
    with pytest.raises(IdentityError, match="more than once"):
        verify_identity(doubled, KEY, method="GET", target="/")


def test_identity_from_an_asgi_scope_uses_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = IdentitySigner(
        KEY, org="acme", user="ada", roles=("member",), grants=("state",), config='{"x":1}'
    ).headers("POST", "/notes?page=2")
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/notes",
        "raw_path": b"/notes",
        "query_string": b"page=2",
        "headers": headers,
    }
    monkeypatch.setenv("APPRT_IDENTITY_KEY", KEY.hex())
    who = identity_from_scope(scope)
    assert (who.org, who.user, who.config) == ("acme", "ada", {"x": 1})
    assert who.has_role("member") and who.granted("state") and not who.granted("network")
    monkeypatch.setenv("APPRT_IDENTITY_KEY", derive_key(b"other" * 7, "i1").hex())
    with pytest.raises(IdentityError):
        identity_from_scope(scope)


def test_the_platform_secret_is_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = load_or_create_secret(settings)
    path = settings.data_dir / "identity.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 32
    assert load_or_create_secret(settings) == first
    os.chmod(path, 0o644)
    with pytest.raises(ApprtError, match="readable by other users"):
        load_or_create_secret(settings)


def test_the_sdk_needs_only_the_standard_library() -> None:
    import ast
    import sys

    import apprt.sdk

    for module in Path(apprt.sdk.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith("apprt.sdk"), (
                    module.name,
                    name,
                )
