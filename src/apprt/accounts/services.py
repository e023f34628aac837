"""Accounts operations other packages call (never the tables directly).

API tokens look like ``apprt_`` + 43 URL-safe characters (32 random bytes from
:mod:`secrets`). The fixed marker lets secret scanners and people recognize a
leaked token; only its SHA-256 is stored (see :mod:`apprt.accounts.models`).

The first start of the platform creates the platform admin (user ``admin``) and
writes its token to ``<data_dir>/admin.token`` (mode 0600): that file is how an
operator gets in. ``APPRT_ADMIN_TOKEN`` presets the token instead of generating one,
for automation that must know it in advance.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import string
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from apprt.accounts.models import ApiToken, Role, User
from apprt.db.base import utcnow
from apprt.errors import ApprtError
from apprt.settings import Settings

log = structlog.get_logger(__name__)

TOKEN_MARKER = "apprt_"  # noqa: S105 (a marker, not a secret)
ADMIN_NAME = "admin"
#: ``last_used_at`` is refreshed at most this often, so authenticating a burst of
#: requests does not turn every read into a write (SQLite has a single writer).
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Longer strings cannot be tokens; refuse them before hashing.
MAX_TOKEN_LENGTH = 512
MIN_PRESET_LENGTH = 16
_PRESET_ALPHABET = frozenset(string.ascii_letters + string.digits + "-._~+/=")


def generate_token() -> str:
    return TOKEN_MARKER + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    """The harmless start of a token people can recognize it by (``apprt_AbCd1234``)."""
    if token.startswith(TOKEN_MARKER):
        return token[: len(TOKEN_MARKER) + 8]
    return token[:4]  # a preset token of another shape: show little of it


def _add_token(
    session: Session, user: User, token: str, name: str, expires_at: datetime | None = None
) -> ApiToken:
    row = ApiToken(
        user=user,
        name=name,
        prefix=display_prefix(token),
        token_hash=hash_token(token),
        expires_at=expires_at,
    )
    session.add(row)
    return row


def create_token(
    session: Session, user: User, name: str, *, expires_in: timedelta | None = None
) -> str:
    """Mint a new token for ``user``; the returned string is the only copy of it.

    ``expires_in`` makes a session token (password login); API tokens never expire.
    """
    token = generate_token()
    expires_at = utcnow() + expires_in if expires_in is not None else None
    _add_token(session, user, token, name, expires_at)
    session.flush()
    return token


def authenticate(session: Session, token: str) -> User | None:
    """The enabled user owning the unrevoked ``token``, else ``None``.

    The lookup is by SHA-256, so timing reveals nothing about stored tokens (an
    attacker cannot steer the hash); the final comparison is constant-time anyway.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(token)
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    now = utcnow()
    if row.revoked_at is not None or row.user.disabled:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row.user


def _check_preset(token: str) -> None:
    if len(token) < MIN_PRESET_LENGTH or not set(token) <= _PRESET_ALPHABET:
        raise ApprtError.single(
            f"APPRT_ADMIN_TOKEN must be at least {MIN_PRESET_LENGTH} characters of "
            "letters, digits and -._~+/=",
            location="APPRT_ADMIN_TOKEN",
            hint="unset it to get a generated token, or use one made by: python -c "
            "\"import secrets; print('apprt_' + secrets.token_urlsafe(32))\"",
        )


def write_private_file(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, readable by the owner only.

    The temporary file is created 0600 by :func:`tempfile.mkstemp` (whatever the
    umask), so the content is never world-readable, not even for an instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def bootstrap_platform_admin(session: Session, settings: Settings) -> str | None:
    """Make sure the platform admin exists; return its token when one was just made.

    * First start: create user ``admin`` (platform admin) with the token from
      ``APPRT_ADMIN_TOKEN`` or a generated one, and write it to
      ``settings.admin_token_path``.
    * Later starts: nothing, except that a new ``APPRT_ADMIN_TOKEN`` is added as
      another valid admin token (earlier ones stay valid until revoked) and written
      to the token file.

    The file is written before the caller commits: if the commit fails the file holds
    a token that does not work yet, and the next start simply redoes the bootstrap.
    """
    preset = settings.admin_token
    if preset is not None:
        _check_preset(preset)
    path = settings.admin_token_path
    admin = session.scalars(select(User).where(User.name == ADMIN_NAME)).one_or_none()
    if admin is None:
        admin = User(name=ADMIN_NAME, role=Role.PLATFORM_ADMIN)
        session.add(admin)
        token = preset or generate_token()
        _add_token(session, admin, token, "bootstrap" if preset is None else "APPRT_ADMIN_TOKEN")
        session.flush()
        write_private_file(path, token + "\n")
        log.info("accounts.admin_created", user=ADMIN_NAME, token_file=str(path))
        return token

    if preset is None:
        if not path.exists():
            log.warning(
                "accounts.admin_token_file_missing",
                token_file=str(path),
                hint="set APPRT_ADMIN_TOKEN and restart to get a working admin token",
            )
        return None

    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(preset))
    ).one_or_none()
    if row is None:
        _add_token(session, admin, preset, "APPRT_ADMIN_TOKEN")
        session.flush()
        write_private_file(path, preset + "\n")
        log.info("accounts.admin_token_added", user=ADMIN_NAME, token_file=str(path))
        return preset
    if row.user_id != admin.id or row.revoked_at is not None:
        raise ApprtError.single(
            "APPRT_ADMIN_TOKEN is a revoked token or belongs to another user",
            location="APPRT_ADMIN_TOKEN",
            hint="set a new token (or unset it to keep the existing admin tokens)",
        )
    if not path.exists():
        write_private_file(path, preset + "\n")
    return None
