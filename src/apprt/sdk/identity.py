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

    from apprt.sdk import identity

    async def app(scope, receive, send):
        who = identity.current(scope)         # raises IdentityError when not genuine
        ... who.org, who.user, who.roles, who.grants, who.config

:func:`current` also accepts a Starlette/FastAPI ``Request`` (anything with a
``scope``), or the headers with ``method=`` and ``target=``. It remembers the verified
caller for the rest of the request (a context variable), so that platform calls made
while handling it (:mod:`apprt.sdk.state`) act for the caller's organization; they
forward the signed headers (``x-apprt-caller``) and the platform checks them again
with the same key, so a shared-tenancy app cannot act for an organization no request
came from.

Standard library only: apps import this without extra requirements.
"""

from __future__ import annotations

import base64
import contextvars
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
#: The header an app's platform calls carry the caller's signed identity in.
CALLER_HEADER = "x-apprt-caller"
#: Longest ``x-apprt-caller`` value the platform reads.
MAX_CALLER_HEADER = 32 * 1024


class IdentityError(ValueError):
    """The identity headers are missing, stale, or not signed by the platform."""


@dataclass(frozen=True)
class Proof:
    """What the gateway signed for one request: its identity headers, method and target.

    The platform needs all of it to check the signature again when the app forwards
    the caller's identity with a platform call.
    """

    headers: tuple[tuple[str, str], ...]  # the x-apprt-* values as received (lowercase)
    method: str
    target: str

    def encode(self) -> str:
        """The ``x-apprt-caller`` header value (base64url of a JSON object, ASCII)."""
        data = {"h": dict(self.headers), "m": self.method, "t": self.target}
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii")

    @classmethod
    def decode(cls, value: str) -> Proof:
        """Parse an ``x-apprt-caller`` value (raises IdentityError when malformed)."""
        if len(value) > MAX_CALLER_HEADER:
            raise IdentityError(f"{CALLER_HEADER} is longer than {MAX_CALLER_HEADER} characters")
        try:
            data = json.loads(base64.urlsafe_b64decode(value.encode("ascii")))
        except (ValueError, UnicodeError):
            raise IdentityError(f"{CALLER_HEADER} is not base64url-encoded JSON") from None
        if not isinstance(data, dict):
            raise IdentityError(f"{CALLER_HEADER} is not a JSON object")
        headers, method, target = data.get("h"), data.get("m"), data.get("t")
        if (
            not isinstance(headers, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
            or not isinstance(method, str)
            or not isinstance(target, str)
        ):
            raise IdentityError(f"{CALLER_HEADER} lacks the headers, method or target")
        return cls(tuple(sorted(headers.items())), method, target)


@dataclass(frozen=True)
class Identity:
    org: str
    user: str
    roles: tuple[str, ...]
    grants: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)
    timestamp: int = 0
    #: The signed request this identity was verified from (None when built by hand).
    proof: Proof | None = field(default=None, compare=False, repr=False)

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
    signed = {name: values[name] for name in (*SIGNED, TIMESTAMP, SIGNATURE) if name in values}
    return Identity(
        org=values.get(ORG, ""),
        user=values.get(USER, ""),
        roles=_split(values.get(ROLES, "")),
        grants=_split(values.get(GRANTS, "")),
        config=config,
        timestamp=int(timestamp),
        proof=Proof(tuple(sorted(signed.items())), method.upper(), target),
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


_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "apprt_identity", default=None
)


def current(
    source: Any,
    key: bytes | None = None,
    *,
    method: str | None = None,
    target: str | None = None,
    max_age_s: float = DEFAULT_MAX_AGE_S,
) -> Identity:
    """The verified caller of the request being handled (org, user, roles, grants, config).

    ``source``: an ASGI scope, an object with a ``scope`` (Starlette/FastAPI
    ``Request``), or the request's headers, then with ``method`` and ``target`` (path
    and query as on the wire). ``key``: default ``$APPRT_IDENTITY_KEY``. Raises
    :class:`IdentityError` when the headers are missing, stale or not the gateway's.

    The result is also remembered for the rest of the request (see :func:`active`):
    :mod:`apprt.sdk.state` calls made meanwhile act for ``who.org``.
    """
    scope = getattr(source, "scope", source)
    if isinstance(scope, Mapping) and "type" in scope:
        who = identity_from_scope(scope, key, max_age_s=max_age_s)
    else:
        if method is None or target is None:
            raise IdentityError(
                "headers alone cannot be checked: pass method= and target= of the request "
                "(or pass the ASGI scope or the Request)"
            )
        who = verify_identity(source, key, method=method, target=target, max_age_s=max_age_s)
    _current.set(who)
    return who


def active() -> Identity | None:
    """The caller :func:`current` verified in this context (request), or None."""
    return _current.get()
