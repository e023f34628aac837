"""Publishers, their Ed25519 signing keys and their scoped API tokens.

Publisher tokens are minted and stored like accounts' tokens (same generator, same
SHA-256 lookup, see :mod:`apprt.accounts.services`) but live in their own table: a
publisher token can only upload and manage the apps its scopes match, nothing else
on the platform.
"""

from __future__ import annotations

import fnmatch
import hmac
import re
from collections.abc import Sequence

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from apprt.accounts.services import (
    LAST_USED_RESOLUTION,
    MAX_TOKEN_LENGTH,
    display_prefix,
    generate_token,
    hash_token,
)
from apprt.db.base import utcnow
from apprt.manifest.models import PUBLISHER_PATTERN
from apprt.package import key_id
from apprt.registry.errors import ConflictError, NotFoundError, RegistryError
from apprt.registry.models import Publisher, PublisherKey, PublisherToken

_PUBLISHER_RE = re.compile(PUBLISHER_PATTERN)
#: App-id globs: the app-id alphabet plus ``*`` and ``?``.
_SCOPE_RE = re.compile(r"^[a-z0-9*?][a-z0-9.*?-]{0,127}$")
MAX_SCOPES = 20


def check_publisher_name(name: str) -> str:
    if not isinstance(name, str) or not _PUBLISHER_RE.fullmatch(name):
        raise RegistryError.one(
            f"{name!r} is not a valid publisher name",
            location="name",
            hint="use 1-40 lowercase letters, digits and '-', not starting or ending with "
            "'-' (the same name apps put in their manifest's `publisher`)",
        )
    return name


def create_publisher(
    session: Session, name: str, *, display_name: str = "", actor: str = ""
) -> Publisher:
    check_publisher_name(name)
    if session.scalars(select(Publisher).where(Publisher.name == name)).first() is not None:
        raise ConflictError.one(
            f"publisher {name!r} already exists",
            location="name",
            hint="pick another name, or add keys and tokens to the existing publisher",
        )
    publisher = Publisher(name=name, display_name=display_name[:128], created_by=actor)
    session.add(publisher)
    session.flush()
    return publisher


def get_publisher(session: Session, name: str) -> Publisher:
    publisher = session.scalars(select(Publisher).where(Publisher.name == name)).first()
    if publisher is None:
        raise NotFoundError.one(
            f"no publisher named {name!r}",
            location="publisher",
            hint="check the name; the platform admin creates publishers with "
            "`apprt registry publisher create NAME`",
        )
    return publisher


def list_publishers(session: Session) -> Sequence[Publisher]:
    return session.scalars(select(Publisher).order_by(Publisher.name)).all()


# -- keys ---------------------------------------------------------------------------


def parse_public_key(pem: str) -> Ed25519PublicKey:
    """An Ed25519 public key from SubjectPublicKeyInfo PEM, or a :class:`RegistryError`."""
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else b""
    if b"PRIVATE KEY" in data:
        raise RegistryError.one(
            "this is a private key; register the public key (and keep the private key secret)",
            location="public_key",
            hint="send the .pub file made by `apprt keys generate`, not the .key",
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise RegistryError.one(
            "not a PEM public key (expected `-----BEGIN PUBLIC KEY-----`)",
            location="public_key",
            hint="send the .pub file made by `apprt keys generate`",
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise RegistryError.one(
            "only Ed25519 keys can sign apprt packages",
            location="public_key",
            hint="create an Ed25519 key pair with `apprt keys generate`",
        )
    return key


def add_key(session: Session, publisher: Publisher, pem: str, *, name: str = "") -> PublisherKey:
    key = parse_public_key(pem)
    kid = key_id(key)
    existing = session.scalars(select(PublisherKey).where(PublisherKey.key_id == kid)).first()
    if existing is not None:
        owner = "this publisher" if existing.publisher_id == publisher.id else "another publisher"
        state = "revoked" if existing.revoked_at is not None else "active"
        raise ConflictError.one(
            f"key {kid} is already registered to {owner} ({state})",
            location="public_key",
            hint="a key is registered once; generate a new key pair for a new key"
            if state == "revoked"
            else "nothing to do: the key is already usable",
        )
    canonical = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    row = PublisherKey(publisher=publisher, key_id=kid, public_key_pem=canonical, name=name[:100])
    session.add(row)
    session.flush()
    return row


def get_key(session: Session, publisher: Publisher, kid: str) -> PublisherKey:
    row = session.scalars(
        select(PublisherKey).where(
            PublisherKey.publisher_id == publisher.id, PublisherKey.key_id == kid
        )
    ).first()
    if row is None:
        raise NotFoundError.one(
            f"publisher {publisher.name!r} has no key {kid!r}",
            location="key_id",
            hint="list the keys with GET /api/v1/registry/publishers/NAME/keys",
        )
    return row


def revoke_key(session: Session, key: PublisherKey, *, reason: str = "") -> PublisherKey:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.revoked_reason = reason[:500]
    return key


def active_keys(session: Session, publisher: Publisher) -> dict[str, Ed25519PublicKey]:
    """The publisher's unrevoked keys by key id, as :func:`require_valid_signature` takes."""
    rows = session.scalars(
        select(PublisherKey).where(
            PublisherKey.publisher_id == publisher.id, PublisherKey.revoked_at.is_(None)
        )
    ).all()
    keys: dict[str, Ed25519PublicKey] = {}
    for row in rows:
        key = serialization.load_pem_public_key(row.public_key_pem.encode("ascii"))
        assert isinstance(key, Ed25519PublicKey)
        keys[row.key_id] = key
    return keys


def revoked_key_ids(session: Session, publisher: Publisher) -> set[str]:
    return set(
        session.scalars(
            select(PublisherKey.key_id).where(
                PublisherKey.publisher_id == publisher.id, PublisherKey.revoked_at.is_not(None)
            )
        ).all()
    )


# -- tokens -------------------------------------------------------------------------


def check_scopes(scopes: Sequence[str]) -> list[str]:
    cleaned = [s.strip() for s in scopes if isinstance(s, str)]
    if not cleaned or len(cleaned) > MAX_SCOPES:
        raise RegistryError.one(
            f"a token needs 1 to {MAX_SCOPES} scopes",
            location="scopes",
            hint="give app-id globs such as 'com.example.*'",
        )
    bad = [s for s in cleaned if not _SCOPE_RE.fullmatch(s)]
    if bad:
        raise RegistryError.one(
            f"not an app-id glob: {', '.join(repr(b) for b in bad)}",
            location="scopes",
            hint="use lowercase app-id characters and the wildcards '*' and '?', "
            "e.g. 'com.example.*' or 'com.example.crm-connector'",
        )
    return sorted(set(cleaned))


def create_token(
    session: Session, publisher: Publisher, *, scopes: Sequence[str], name: str = ""
) -> tuple[PublisherToken, str]:
    """Mint a token; the returned string is the only copy of it."""
    token = generate_token()
    row = PublisherToken(
        publisher=publisher,
        name=(name or "publisher token")[:100],
        prefix=display_prefix(token),
        token_hash=hash_token(token),
        scopes=check_scopes(scopes),
    )
    session.add(row)
    session.flush()
    return row, token


def get_token(session: Session, publisher: Publisher, token_id: int) -> PublisherToken:
    row = session.get(PublisherToken, token_id)
    if row is None or row.publisher_id != publisher.id:
        raise NotFoundError.one(
            f"publisher {publisher.name!r} has no token {token_id}",
            location="token_id",
            hint="list the tokens with GET /api/v1/registry/publishers/NAME/tokens",
        )
    return row


def revoke_token(session: Session, token: PublisherToken) -> PublisherToken:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def authenticate_publisher(session: Session, token: str) -> PublisherToken | None:
    """The unrevoked publisher token ``token`` is, else ``None`` (same rules as accounts)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(token)
    row = session.scalars(
        select(PublisherToken).where(PublisherToken.token_hash == digest)
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row


def scope_allows(scopes: Sequence[str], app_id: str) -> bool:
    return any(fnmatch.fnmatchcase(app_id, scope) for scope in scopes)
