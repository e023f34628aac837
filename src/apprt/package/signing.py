"""Ed25519 keys and detached package signatures.

Workflow
--------
1. A publisher creates a key pair once with :func:`generate_keypair` (a PKCS#8 PEM
   private key, mode 0600, and a SubjectPublicKeyInfo PEM public key) and shares
   the public key, identified by :func:`key_id` (sha256 of the raw 32-byte key).
2. :func:`sign_package` verifies a built package, then rewrites it with a
   ``SIGNATURE`` member holding an Ed25519 signature over
   ``b"apprt-package-v1:" + sha256(MANIFEST).hexdigest()``. Because MANIFEST pins
   every file's sha256, that signature covers all content. Several keys may sign
   (the publisher, then the registry); re-signing with a key replaces its entry,
   and signing is deterministic, so signing twice gives identical bytes.
3. Whoever installs checks the signatures against keys they trust with
   :func:`verify_signatures` (a report) or :func:`require_valid_signature` (raises).

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from apprt.package import (build_package, generate_keypair, load_private_key,
    ...     load_public_key, require_valid_signature, sign_package)
    >>> workdir = tempfile.TemporaryDirectory()
    >>> tmp = Path(workdir.name)
    >>> (tmp / "app" / "backend").mkdir(parents=True)
    >>> _ = (tmp / "app" / "app.toml").write_text('name = "hello"\\n')
    >>> _ = build_package(tmp / "app", tmp / "hello.apppkg")
    >>> keys = generate_keypair(tmp / "keys")
    >>> info = sign_package(tmp / "hello.apppkg", load_private_key(keys.private))
    >>> check = require_valid_signature(info, [load_public_key(keys.public)])
    >>> check.valid
    True
    >>> workdir.cleanup()
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from apprt.errors import PackageError, Problem
from apprt.package._format import (
    FileEntry,
    PackageInfo,
    Signature,
    package_error,
    render_signatures,
    sha256_hex,
    signing_message,
)
from apprt.package._fs import AtomicFile
from apprt.package._paths import MANIFEST_NAME, SIGNATURE_NAME
from apprt.package._tar import ArchiveWriter, MemberStream, scan
from apprt.package.limits import DEFAULT_LIMITS, PackageLimits

__all__ = [
    "KeyPaths",
    "SignatureCheck",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "require_valid_signature",
    "sign_package",
    "verify_signatures",
]

_SIGN_HINT = "sign it: `apprt app sign FILE --key KEY`"
_KEYGEN_HINT = "create an Ed25519 key pair with `apprt keys generate`"


class KeyPaths(NamedTuple):
    """Where :func:`generate_keypair` wrote the two keys."""

    private: Path
    public: Path


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The verdict on one signature of a package.

    ``valid`` is ``True`` (verified with a trusted key), ``False`` (a trusted key,
    but the signature does not match: the package was altered after signing) or
    ``None`` (no trusted key has this ``key_id``).
    """

    key_id: str
    valid: bool | None
    reason: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """sha256 hex of the raw 32-byte public key: how packages name their signers."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# --- keys -------------------------------------------------------------------------


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(out_dir: Path, name: str = "apprt-signing") -> KeyPaths:
    """Create a new Ed25519 key pair as ``out_dir/<name>.key`` and ``<name>.pub``.

    The private key is unencrypted PKCS#8 PEM, created with mode 0600 and
    ``O_EXCL``: an existing key is never overwritten (a :class:`PackageError`
    says so). The public key is SubjectPublicKeyInfo PEM, mode 0644.
    """
    if not name or "/" in name or "\0" in name or name.startswith("."):
        raise package_error(
            f"invalid key name {name!r}",
            hint="use a plain file name such as `apprt-signing` (no `/`, not starting with `.`)",
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = KeyPaths(out_dir / f"{name}.key", out_dir / f"{name}.pub")
    for path in paths:
        if path.is_symlink() or path.exists():
            raise PackageError(
                [
                    Problem(
                        reason="a key file already exists; refusing to overwrite it",
                        file=str(path),
                        hint="choose another name or directory, or remove the old key "
                        "if you are sure it is not needed",
                    )
                ],
                title="cannot create the key pair",
            )
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        _write_new(paths.private, private_pem, 0o600)
    except FileExistsError:
        raise package_error(
            "a key file already exists; refusing to overwrite it",
            file=str(paths.private),
            hint="choose another name or directory",
        ) from None
    try:
        _write_new(paths.public, public_pem, 0o644)
    except BaseException:
        with contextlib.suppress(OSError):
            paths.private.unlink()
        raise
    return paths


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise package_error(
            f"cannot read the {what}: {exc.strerror}", file=str(path), hint=_KEYGEN_HINT
        ) from None


_KEY_KINDS: list[tuple[tuple[type, ...], str]] = [
    ((rsa.RSAPrivateKey, rsa.RSAPublicKey), "an RSA key"),
    ((ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey), "an elliptic-curve (ECDSA) key"),
    ((dsa.DSAPrivateKey, dsa.DSAPublicKey), "a DSA key"),
    ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "an Ed448 key"),
    ((x25519.X25519PrivateKey, x25519.X25519PublicKey), "an X25519 key"),
    ((x448.X448PrivateKey, x448.X448PublicKey), "an X448 key"),
]


def _describe(key: object) -> str:
    for classes, text in _KEY_KINDS:
        if isinstance(key, classes):
            return text
    return f"a {type(key).__name__}"


def load_private_key(path: Path, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PEM file (PKCS#8, optionally encrypted).

    Raises :class:`PackageError` with a fix when the file is missing, not PEM, a
    public key, encrypted without ``password``, or a key of another type.
    """
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        encrypted = password is None
        raise package_error(
            "the private key is encrypted; a password is needed"
            if encrypted
            else "the private key is not encrypted, but a password was given",
            file=str(path),
            hint="pass the key's password" if encrypted else "do not pass a password",
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        with contextlib.suppress(ValueError, UnsupportedAlgorithm):
            serialization.load_pem_public_key(data)
            raise package_error(
                "this is a public key; signing needs the private key",
                file=str(path),
                hint="pass the private key file (the .key next to this .pub)",
            ) from None
        bad_password = password is not None and "password" in str(exc).lower()
        raise package_error(
            "wrong password for the private key"
            if bad_password
            else "not a PEM private key (expected `-----BEGIN PRIVATE KEY-----`)",
            file=str(path),
            hint="check the password" if bad_password else _KEYGEN_HINT,
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise package_error(
            f"this is {_describe(key)}; apprt signs with Ed25519 keys only",
            file=str(path),
            hint=_KEYGEN_HINT,
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a SubjectPublicKeyInfo PEM file.

    Raises :class:`PackageError` when the file is missing, not PEM, a private key
    (which must never be handed out), or a key of another type.
    """
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        if b"PRIVATE KEY-----" in data:
            raise package_error(
                "this is a private key; pass the public key instead "
                "(and keep the private key secret)",
                file=str(path),
                hint="pass the .pub file created next to the .key",
            ) from None
        raise package_error(
            "not a PEM public key (expected `-----BEGIN PUBLIC KEY-----`)",
            file=str(path),
            hint=_KEYGEN_HINT,
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise package_error(
            f"this is {_describe(key)}; apprt verifies Ed25519 keys only",
            file=str(path),
            hint="ask the publisher for their Ed25519 public key",
        )
    return key


# --- signing ----------------------------------------------------------------------


class _SigningSink:
    """Copies a package being verified into a writer, inserting the new SIGNATURE."""

    def __init__(self, writer: ArchiveWriter, private_key: Ed25519PrivateKey) -> None:
        self._writer = writer
        self._key = private_key

    def start(self, manifest: bytes, signatures: Sequence[Signature]) -> None:
        signer = key_id(self._key.public_key())
        new = Signature(
            key_id=signer, signature=self._key.sign(signing_message(sha256_hex(manifest)))
        )
        merged = [new if s.key_id == signer else s for s in signatures]
        if all(s.key_id != signer for s in signatures):
            merged.append(new)
        self._writer.add_bytes(MANIFEST_NAME, manifest)
        self._writer.add_bytes(SIGNATURE_NAME, render_signatures(merged))

    def member(self, entry: FileEntry, data: MemberStream) -> None:
        self._writer.add_stream(entry, data)


def sign_package(
    path: Path,
    private_key: Ed25519PrivateKey,
    out: Path | None = None,
    *,
    limits: PackageLimits = DEFAULT_LIMITS,
) -> PackageInfo:
    """Add (or replace) ``private_key``'s signature on the package at ``path``.

    The package is verified while it is copied, in one pass; the result is
    written atomically to ``out`` (default: ``path`` itself, replaced in place) and
    read back. Other keys' signatures are kept, in order. Returns the signed
    package's :class:`PackageInfo`.
    """
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("sign_package needs an Ed25519PrivateKey (see load_private_key)")
    path = Path(path)
    target = Path(out) if out is not None else path
    with AtomicFile(target) as atomic:
        writer = ArchiveWriter(atomic.file)
        scan(path, limits, _SigningSink(writer, private_key))
        writer.close()
        atomic.flush()
        atomic.file.seek(0)
        info = scan(atomic.file, limits, label=str(target))
        atomic.commit()
    return info


# --- verification -----------------------------------------------------------------


def _trusted_by_id(
    trusted: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey],
) -> dict[str, Ed25519PublicKey]:
    keys = trusted.values() if isinstance(trusted, Mapping) else trusted
    result: dict[str, Ed25519PublicKey] = {}
    for key in keys:
        if not isinstance(key, Ed25519PublicKey):
            raise TypeError(f"trusted keys must be Ed25519PublicKey, not {type(key).__name__}")
        result[key_id(key)] = key
    if isinstance(trusted, Mapping):
        for name, key in trusted.items():
            if name != key_id(key):
                raise ValueError(f"trusted key registered as {name} has key id {key_id(key)}")
    return result


def verify_signatures(
    info: PackageInfo,
    trusted: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey],
) -> list[SignatureCheck]:
    """Check each signature of ``info`` against the ``trusted`` keys.

    ``trusted`` is an iterable of public keys or a mapping from :func:`key_id` to
    key. Returns one :class:`SignatureCheck` per signature, in package order
    (empty if the package is unsigned).
    """
    keys = _trusted_by_id(trusted)
    message = info.signing_message
    checks: list[SignatureCheck] = []
    for sig in info.signatures:
        key = keys.get(sig.key_id)
        if key is None:
            checks.append(SignatureCheck(sig.key_id, None, "signed by a key that is not trusted"))
            continue
        try:
            key.verify(sig.signature, message)
        except InvalidSignature:
            checks.append(
                SignatureCheck(
                    sig.key_id, False, "the signature does not match the package's MANIFEST"
                )
            )
        else:
            checks.append(SignatureCheck(sig.key_id, True, "valid signature by a trusted key"))
    return checks


def require_valid_signature(
    info: PackageInfo,
    trusted: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey],
) -> SignatureCheck:
    """Return the first valid signature by a trusted key, or raise :class:`PackageError`.

    Refuses a package that is unsigned, signed only by unknown keys, or carrying
    *any* signature by a trusted key that does not verify (a trusted signer signed
    different content, so the package was altered).
    """
    checks = verify_signatures(info, trusted)
    if not checks:
        raise package_error("package is not signed", file=SIGNATURE_NAME, hint=_SIGN_HINT)
    invalid = [c for c in checks if c.valid is False]
    if invalid:
        raise PackageError(
            [
                Problem(
                    reason=f"signature by {c.key_id} does not match",
                    file=SIGNATURE_NAME,
                    hint="the package was altered after it was signed; "
                    "get it again from its publisher",
                )
                for c in invalid
            ],
            title="invalid package signature",
        )
    for check in checks:
        if check.valid:
            return check
    unknown = ", ".join(c.key_id for c in checks)
    raise package_error(
        f"signed by unknown key {unknown}",
        file=SIGNATURE_NAME,
        hint="trust the publisher's public key (ask them for it), or "
        + _SIGN_HINT.replace("sign it", "sign it with a trusted key"),
    )
