"""Who is calling: the identity headers the gateway signs, and how an app checks them.

Every request the gateway forwards to an app carries::

    x-apprt-org        the organization (slug) the request is for
    x-apprt-user       the user's name
    x-apprt-roles      comma-separated roles (``org_admin``/``member``, ``platform_admin``)
    x-apprt-grants     comma-separated permissions the org admin granted the app
    x-apprt-config     JSON object: the organization's settings for the app
    x-apprt-timestamp  unix seconds when the gateway signed the request
    x-apprt-signature  ``v1=`` + hex HMAC-SHA256 of the canonical string below

The gateway strips any ``x-apprt-*`` header a client sent, so an app that checks the
signature can trust these. The canonical string binds them to the request's method and
target (path and query as sent on the wire), so a signed set cannot be replayed onto
another request, and to the timestamp, so it cannot be replayed later than
``max_age_s``::

    v1 \\n timestamp \\n METHOD \\n target \\n org \\n user \\n roles \\n grants \\n config

The key is per instance (the platform derives it from its secret and the instance id;
no app can forge headers for another app) and reaches the app as
``$APPRT_IDENTITY_KEY`` (hex). In an ASGI app::

    from apprt.sdk import identity_from_scope, IdentityError

    async def app(scope, receive, send):
        who = identity_from_scope(scope)      # raises IdentityError when not genuine
        ... who.org, who.user, who.roles, who.grants, who.config

Standard library only: apps import this without extra requirements.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

VERSION = "v1"
PREFIX = "x-apprt-"
ORG, USER, ROLES, GRANTS, CONFIG = (
    "x-apprt-org",
    "x-apprt-user",
    "x-apprt-roles",
    "x-apprt-grants",
    "x-apprt-config",
)
TIMESTAMP, SIGNATURE = "x-apprt-timestamp", "x-apprt-signature"
#: The signed headers, in canonical order.
SIGNED = (ORG, USER, ROLES, GRANTS, CONFIG)
KEY_ENV = "APPRT_IDENTITY_KEY"
DEFAULT_MAX_AGE_S = 300.0


class IdentityError(ValueError):
    """The identity headers are missing, stale, or not signed by the platform."""


@dataclass(frozen=True)
class Identity:
    org: str
    user: str
    roles: tuple[str, ...]
    grants: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)
    timestamp: int = 0

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def granted(self, permission: str) -> bool:
        return permission in self.grants


def derive_key(secret: bytes, instance_id: str) -> bytes:
    """The per-instance signing key (HMAC-SHA256 of the instance id under the secret)."""
    return hmac.new(secret, b"apprt-identity-v1:" + instance_id.encode(), hashlib.sha256).digest()


def canonical(values: Mapping[str, str], timestamp: str, method: str, target: str) -> bytes:
    parts = [VERSION, timestamp, method.upper(), target, *(values.get(h, "") for h in SIGNED)]
    return "\n".join(parts).encode("utf-8")


def sign(key: bytes, values: Mapping[str, str], timestamp: str, method: str, target: str) -> str:
    """The ``x-apprt-signature`` value for ``values`` (the five identity headers)."""
    digest = hmac.new(key, canonical(values, timestamp, method, target), hashlib.sha256)
    return f"{VERSION}={digest.hexdigest()}"


def _normalize(headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    items: Iterable[tuple[Any, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        key = key.lower()
        if not key.startswith(PREFIX):
            continue
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if key in out:
            raise IdentityError(f"{key} appears more than once")
        out[key] = text
    return out


def _split(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(",") if part)


def _env_key() -> bytes:
    value = os.environ.get(KEY_ENV)
    if not value:
        raise IdentityError(f"no key given and ${KEY_ENV} is not set")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise IdentityError(f"${KEY_ENV} is not hex") from None


def verify_identity(
    headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]],
    key: bytes | None = None,
    *,
    method: str,
    target: str,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    now: float | None = None,
) -> Identity:
    """Check the gateway's signature over ``headers`` and return who is calling.

    ``headers``: a mapping (any case) or ASGI ``[(name, value)]`` bytes pairs.
    ``key``: the instance's key (default ``$APPRT_IDENTITY_KEY``). ``method`` and
    ``target`` (path, plus ``?query`` if any, as on the wire) of the request received.
    Raises :class:`IdentityError` when anything is missing, stale or forged.
    """
    key = key if key is not None else _env_key()
    values = _normalize(headers)
    signature, timestamp = values.get(SIGNATURE), values.get(TIMESTAMP)
    if not signature or not timestamp:
        raise IdentityError("no signed identity: the request did not come through the gateway")
    if not timestamp.isdigit():
        raise IdentityError("malformed x-apprt-timestamp")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > max_age_s:
        raise IdentityError(f"identity signed {age:.0f} s ago, more than {max_age_s:g} s")
    expected = sign(key, values, timestamp, method, target)
    if not hmac.compare_digest(expected, signature):
        raise IdentityError("identity signature does not match")
    try:
        config = json.loads(values.get(CONFIG) or "{}")
    except ValueError:
        raise IdentityError("x-apprt-config is not JSON") from None
    if not isinstance(config, dict):
        raise IdentityError("x-apprt-config is not a JSON object")
    return Identity(
        org=values.get(ORG, ""),
        user=values.get(USER, ""),
        roles=_split(values.get(ROLES, "")),
        grants=_split(values.get(GRANTS, "")),
        config=config,
        timestamp=int(timestamp),
    )


def request_target(scope: Mapping[str, Any]) -> str:
    """The request target of an ASGI HTTP or WebSocket scope, as it was on the wire."""
    raw = scope.get("raw_path")
    path = (
        raw.decode("latin-1")
        if isinstance(raw, bytes | bytearray) and raw
        else urllib.parse.quote(str(scope.get("path", "/")))
    )
    query = scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


def identity_from_scope(
    scope: Mapping[str, Any], key: bytes | None = None, *, max_age_s: float = DEFAULT_MAX_AGE_S
) -> Identity:
    """:func:`verify_identity` for an ASGI scope (method and target taken from it)."""
    method = "GET" if scope.get("type") == "websocket" else str(scope.get("method", "GET"))
    return verify_identity(
        scope.get("headers") or [],
        key,
        method=method,
        target=request_target(scope),
        max_age_s=max_age_s,
    )
