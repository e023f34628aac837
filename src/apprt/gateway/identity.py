"""The platform's identity secret and the headers the gateway signs with it.

The secret (32 random bytes, hex) lives in ``<data_dir>/identity.key``, mode 0600,
created on first start. Each instance gets its own key derived from it
(:func:`apprt.sdk.identity.derive_key`), so an app holding its key can verify headers
but cannot forge them for another app. The format and verification are in
:mod:`apprt.sdk.identity`, which apps import.
"""

from __future__ import annotations

import secrets
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from apprt.accounts.services import write_private_file
from apprt.errors import ApprtError
from apprt.sdk import identity as sdk
from apprt.settings import Settings

SECRET_FILE = "identity.key"  # noqa: S105 (a file name)


def secret_path(settings: Settings) -> Path:
    return settings.data_dir / SECRET_FILE


def load_or_create_secret(settings: Settings) -> bytes:
    """The platform secret, created (0600) on first use; refused if others can read it."""
    path = secret_path(settings)
    if not path.exists():
        write_private_file(path, secrets.token_hex(32) + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ApprtError.single(
            f"{path} is readable by other users (mode {mode:o})",
            file=str(path),
            hint=f"chmod 600 {path}",
        )
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except ValueError:
        secret = b""
    if len(secret) < 32:
        raise ApprtError.single(
            f"{path} does not hold a 32-byte hex secret",
            file=str(path),
            hint="remove it to have a new one generated (apps get new keys at their next start)",
        )
    return secret


def identity_headers(
    key: bytes,
    *,
    org: str,
    user: str,
    roles: Sequence[str],
    grants: Sequence[str],
    config: str,
    method: str,
    target: str,
    now: float | None = None,
) -> list[tuple[bytes, bytes]]:
    """The seven ``x-apprt-*`` headers for one request, signed with the instance's key."""
    values = {
        sdk.ORG: org,
        sdk.USER: user,
        sdk.ROLES: ",".join(roles),
        sdk.GRANTS: ",".join(grants),
        sdk.CONFIG: config,
    }
    timestamp = str(int(time.time() if now is None else now))
    signature = sdk.sign(key, values, timestamp, method, target)
    out = [(name.encode(), value.encode()) for name, value in values.items()]
    out.append((sdk.TIMESTAMP.encode(), timestamp.encode()))
    out.append((sdk.SIGNATURE.encode(), signature.encode()))
    return out
