from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprt.manifest import KINDS, InvalidPermission, Permission, parse_permission


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("state", Permission("state")),
        ("dataroom:read", Permission("dataroom:read")),
        ("events:publish:sales.updated", Permission("events:publish", "sales.updated")),
        ("events:subscribe:sales.*", Permission("events:subscribe", "sales.*")),
        ("tools:call:crm.*", Permission("tools:call", "crm.*")),
        ("network:api.example.com:443", Permission("network", "api.example.com:443")),
        ("network:*.example.com:8443", Permission("network", "*.example.com:8443")),
        ("network:203.0.113.7:53", Permission("network", "203.0.113.7:53")),
        ("network:[2001:db8::1]:443", Permission("network", "[2001:db8::1]:443")),
    ],
)
def test_valid_permissions(text: str, expected: Permission) -> None:
    assert parse_permission(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "non-empty"),
        ("admin", "unknown permission"),
        ("state:x", "unknown permission"),
        ("network", "needs a host:port"),
        ("network:example.com", "needs a host and a port"),
        ("network:localhost:80", "not a host name"),
        ("network:example.com:99999", "1 to 65535"),
        ("events:publish:Sales Updated", "topic"),
        ("tools:call:CRM/*", "tool pattern"),
    ],
)
def test_invalid_permissions_explain(text: str, needle: str) -> None:
    with pytest.raises(InvalidPermission) as info:
        parse_permission(text)
    assert needle in str(info.value)


def test_sensitivity_and_globs() -> None:
    assert parse_permission("network:api.example.com:443").sensitive
    assert parse_permission("dataroom:write").sensitive
    assert not parse_permission("state").sensitive
    granted = parse_permission("tools:call:crm.*")
    assert granted.covers(parse_permission("tools:call:crm.lookup"))
    assert not granted.covers(parse_permission("tools:call:billing.charge"))
    assert not granted.covers(parse_permission("state"))


@given(st.text(max_size=60))
def test_parse_permission_only_raises_invalid_permission(text: str) -> None:
    try:
        p = parse_permission(text)
    except InvalidPermission as exc:
        assert str(exc)
    else:
        assert p.kind in KINDS
        assert parse_permission(str(p)) == p  # normalized form is a fixed point
