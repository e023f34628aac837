"""The platform's identity secret and the headers the gateway signs with it.

The secret (32 random bytes, hex) lives in ``<data_dir>/identity.key``, mode 0600,
created on first start. Each instance gets its own key derived from it
(:func:`apprt.sdk.identity.derive_key`), so an app holding its key can verify headers
but cannot forge them for another app. The format and verification are in
:mod:`apprt.sdk.identity`, which apps import.
"""

from __future__ import annotations

import hashlib
import hmac
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


class IdentitySigner:
    """Signs the identity headers of one caller for one instance, request after request.

    What does not change between requests (the five values, their encoded headers, the
    keyed HMAC state) is prepared once; a request costs a copy of the HMAC state, one
    update with its timestamp, method and target, and one digest. The result is the
    same as :func:`identity_headers`'.
    """

    __slots__ = ("_fixed", "_hmac", "_tail")

    def __init__(
        self,
        key: bytes,
        *,
        org: str,
        user: str,
        roles: Sequence[str],
        grants: Sequence[str],
        config: str,
    ) -> None:
        values = {
            sdk.ORG: org,
            sdk.USER: user,
            sdk.ROLES: ",".join(roles),
            sdk.GRANTS: ",".join(grants),
            sdk.CONFIG: config,
        }
        self._fixed = [(name.encode(), value.encode()) for name, value in values.items()]
        # canonical: "v1", timestamp, METHOD, target, then the five values, one a line
        self._tail = ("\n" + "\n".join(values[h] for h in sdk.SIGNED)).encode("utf-8")
        self._hmac = hmac.new(key, f"{sdk.VERSION}\n".encode(), hashlib.sha256)

    def headers(
        self, method: str, target: str, now: float | None = None
    ) -> list[tuple[bytes, bytes]]:
        timestamp = str(int(time.time() if now is None else now))
        mac = self._hmac.copy()
        mac.update(f"{timestamp}\n{method.upper()}\n{target}".encode() + self._tail)
        return [
            *self._fixed,
            (sdk.TIMESTAMP.encode(), timestamp.encode()),
            (sdk.SIGNATURE.encode(), f"{sdk.VERSION}={mac.hexdigest()}".encode()),
        ]


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
