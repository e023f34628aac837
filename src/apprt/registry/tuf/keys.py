"""Ed25519 key files of the TUF roles.

A key file is an unencrypted PKCS#8 PEM private key, mode 0600, in a 0700 directory.
Online roles' keys (``snapshot``, ``timestamp``, ``bins``) must be readable by the
server; ``root`` and ``targets`` keys are only needed to (re-)sign those roles and may
live elsewhere (removable media, a vault): the server runs without them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import (  # type: ignore[attr-defined]  # implicit re-export
    CryptoSigner,
    SSlibKey,
)

from apprt.errors import ApprtError, Problem


class TufKeyError(ApprtError):
    """A TUF key file is missing, unreadable or not an Ed25519 private key (HTTP 500
    never: raised at start-up or by the CLI)."""


def generate_key_file(path: Path) -> CryptoSigner:
    """Create a new Ed25519 key at ``path`` (0600, parent 0700); refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return signer_for(key)


def load_key_file(path: Path) -> CryptoSigner:
    """The signer of the Ed25519 key in ``path``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TufKeyError(
            [
                Problem(
                    reason=f"no TUF key file at {path}",
                    file=str(path),
                    hint="point the matching APPRT_TUF_* setting at the key, or pass --key",
                )
            ],
            title="TUF key missing",
        ) from None
    except OSError as exc:
        raise TufKeyError.single(
            f"cannot read TUF key file: {exc.strerror}",
            file=str(path),
            hint="check the file's permissions",
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise TufKeyError.single(
            "not an unencrypted Ed25519 private key in PEM (PKCS#8)",
            file=str(path),
            hint="use a key made by apprt (or `openssl genpkey -algorithm ed25519`)",
        )
    return signer_for(key)


def signer_for(key: Ed25519PrivateKey) -> CryptoSigner:
    public = SSlibKey.from_crypto(key.public_key())
    return CryptoSigner(key, public)


def load_or_generate(path: Path) -> CryptoSigner:
    """The key at ``path``, created first if there is none (two processes racing both
    end with the one that won: ``O_EXCL`` lets exactly one create it)."""
    with contextlib.suppress(FileExistsError):
        if not path.exists():
            return generate_key_file(path)
    return load_key_file(path)
