"""The data model of a package and the two metadata members, ``MANIFEST`` and ``SIGNATURE``.

``MANIFEST`` lists every content file as ``<sha256 hex> <size> <path>\\n``, sorted by
path. ``SIGNATURE`` is JSON holding detached Ed25519 signatures over
``b"apprt-package-v1:" + sha256(MANIFEST).hexdigest()``. See
``docs/package-format.md`` for the full format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apprt.errors import PackageError, Problem
from apprt.package._paths import (
    APP_TOML,
    MANIFEST_NAME,
    REBUILD_HINT,
    SIGNATURE_NAME,
    check_layout,
    check_path,
)
from apprt.package.limits import PackageLimits

#: Prefix of the message every signature covers; binds signatures to this format.
SIGNING_CONTEXT = b"apprt-package-v1:"
SIGNATURE_VERSION = 1
ALGORITHM = "ed25519"

_LINE = re.compile(r"([0-9a-f]{64}) (0|[1-9][0-9]{0,18}) (.+)")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def package_error(
    reason: str, *, file: str = "", location: str = "", hint: str = REBUILD_HINT
) -> PackageError:
    """A :class:`PackageError` with a single problem."""
    return PackageError(
        [Problem(reason=reason, file=file, location=location, hint=hint)], title="invalid package"
    )


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One content file: its path in the package, size in bytes and sha256 (hex).

    ``executable`` comes from the tar header (mode 0755); it is not covered by the
    MANIFEST and therefore not by signatures.
    """

    path: str
    size: int
    sha256: str
    executable: bool = False


@dataclass(frozen=True, slots=True)
class Signature:
    """One detached signature found in ``SIGNATURE`` (not yet verified)."""

    key_id: str
    signature: bytes
    algorithm: str = ALGORITHM


@dataclass(frozen=True, slots=True)
class PackageInfo:
    """What reading a package proved about it.

    Every field was checked against the archive: ``files`` equals the MANIFEST and
    each file's size and sha256 were recomputed while streaming. ``signatures`` are
    only *parsed*; check them with :func:`apprt.package.verify_signatures`.

    Attributes:
        manifest_text: the text of ``app.toml`` (the app manifest).
        files: the content files in MANIFEST order (sorted by path).
        manifest_digest: sha256 hex of the ``MANIFEST`` member, what signatures sign.
        signatures: signatures from ``SIGNATURE``, in file order (empty if unsigned).
        archive_sha256: sha256 hex of the ``.apppkg`` file itself.
        archive_size: size of the ``.apppkg`` file in bytes.
    """

    manifest_text: str
    files: tuple[FileEntry, ...]
    manifest_digest: str
    signatures: tuple[Signature, ...]
    archive_sha256: str
    archive_size: int
    _by_path: dict[str, FileEntry] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._by_path.update((f.path, f) for f in self.files)

    @property
    def signing_message(self) -> bytes:
        """The bytes each Ed25519 signature is over."""
        return signing_message(self.manifest_digest)

    @property
    def total_size(self) -> int:
        """Sum of the content files' sizes."""
        return sum(f.size for f in self.files)

    @property
    def is_signed(self) -> bool:
        return bool(self.signatures)

    def file(self, path: str) -> FileEntry | None:
        """The entry for ``path``, or ``None``."""
        return self._by_path.get(path)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without ``manifest_text``)."""
        return {
            "archive_sha256": self.archive_sha256,
            "archive_size": self.archive_size,
            "manifest_digest": self.manifest_digest,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "executable": f.executable}
                for f in self.files
            ],
            "signatures": [
                {
                    "algorithm": s.algorithm,
                    "key_id": s.key_id,
                    "signature": base64.b64encode(s.signature).decode("ascii"),
                }
                for s in self.signatures
            ],
        }


def signing_message(manifest_digest: str) -> bytes:
    return SIGNING_CONTEXT + manifest_digest.encode("ascii")


# --- MANIFEST ---------------------------------------------------------------------


def render_manifest(files: Iterable[FileEntry]) -> bytes:
    """The canonical MANIFEST bytes for ``files`` (sorted by path here)."""
    lines = [f"{f.sha256} {f.size} {f.path}\n" for f in sorted(files, key=lambda f: f.path)]
    return "".join(lines).encode("utf-8")


def parse_manifest(data: bytes, limits: PackageLimits) -> list[FileEntry]:
    """Parse and validate MANIFEST bytes; raise :class:`PackageError` on any defect."""

    def bad(reason: str, line: int | None = None) -> PackageError:
        return package_error(
            reason, file=MANIFEST_NAME, location=f"line {line}" if line is not None else ""
        )

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"MANIFEST is not valid UTF-8 (byte {exc.start})") from None
    if not text:
        raise bad("MANIFEST is empty")
    if not text.endswith("\n"):
        raise bad("MANIFEST does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) >= limits.max_members:
        raise bad(f"MANIFEST lists {len(lines)} files, more than the limit allows")
    entries: list[FileEntry] = []
    previous = ""
    for number, line in enumerate(lines, start=1):
        match = _LINE.fullmatch(line)
        if match is None:
            raise bad("expected `<sha256 hex> <size> <path>`", number)
        digest, size_text, path = match.groups()
        problem = check_path(path, limits) or check_layout(path)
        if problem is not None:
            raise PackageError(
                [Problem(problem.reason, MANIFEST_NAME, f"line {number}", problem.hint)],
                title="invalid package",
            )
        if entries and path <= previous:
            what = "twice" if path == previous else "out of order"
            raise bad(f"`{path}` is listed {what} (paths must be sorted and unique)", number)
        previous = path
        entries.append(FileEntry(path=path, size=int(size_text), sha256=digest))
    if not any(e.path == APP_TOML for e in entries):
        raise package_error(
            "the package has no app.toml", file=MANIFEST_NAME, hint="add app.toml and rebuild"
        )
    return entries


# --- SIGNATURE --------------------------------------------------------------------


def render_signatures(signatures: Sequence[Signature]) -> bytes:
    doc = {
        "version": SIGNATURE_VERSION,
        "signatures": [
            {
                "algorithm": s.algorithm,
                "key_id": s.key_id,
                "signature": base64.b64encode(s.signature).decode("ascii"),
            }
            for s in signatures
        ],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_signatures(data: bytes) -> list[Signature]:
    """Parse and validate SIGNATURE bytes; raise :class:`PackageError` on any defect."""
    hint = "re-sign the package with `apprt app sign FILE --key KEY`"

    def bad(reason: str, location: str = "") -> PackageError:
        return package_error(reason, file=SIGNATURE_NAME, location=location, hint=hint)

    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"SIGNATURE is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"version", "signatures"}:
        raise bad('expected an object with exactly the keys "version" and "signatures"')
    if doc["version"] != SIGNATURE_VERSION or isinstance(doc["version"], bool):
        raise bad(
            f"unsupported SIGNATURE version {doc['version']!r} (this apprt reads version 1)",
            "version",
        )
    items = doc["signatures"]
    if not isinstance(items, list) or not items:
        raise bad("expected a non-empty list of signatures", "signatures")
    result: list[Signature] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"signatures[{index}]"
        if not isinstance(item, dict) or set(item) != {"algorithm", "key_id", "signature"}:
            raise bad('expected an object with "algorithm", "key_id" and "signature"', where)
        if item["algorithm"] != ALGORITHM:
            raise bad(f"unsupported algorithm {item['algorithm']!r} (expected ed25519)", where)
        key = item["key_id"]
        if not isinstance(key, str) or not _HEX64.fullmatch(key):
            raise bad("key_id must be 64 lowercase hex digits", where)
        if key in seen:
            raise bad(f"key {key} signed twice", where)
        seen.add(key)
        sig_text = item["signature"]
        try:
            if not isinstance(sig_text, str):
                raise ValueError
            raw = base64.b64decode(sig_text.encode("ascii"), validate=True)
        except (ValueError, binascii.Error):
            raise bad("signature is not base64", where) from None
        if len(raw) != 64:
            raise bad(f"an Ed25519 signature is 64 bytes, this one is {len(raw)}", where)
        result.append(Signature(key_id=key, signature=raw))
    return result


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
