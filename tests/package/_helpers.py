"""Helpers to lay out app directories and to craft (malicious) archives by hand."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

APP_TOML = b'name = "hello"\nversion = "1.0.0"\n'


def write_tree(root: Path, files: Mapping[str, bytes | str], *, executable: Iterable[str] = ()):
    """Create ``files`` (path -> content) below ``root``; return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
    for rel in executable:
        (root / rel).chmod(0o755)
    return root


def sample_files() -> dict[str, bytes]:
    return {
        "app.toml": APP_TOML,
        "README.md": b"# Hello\n",
        "backend/main.py": b"async def app(scope, receive, send):\n    pass\n",
        "backend/lib/util.py": b"X = 1\n",
        "frontend/index.js": b"export default {};\n",
        "frontend/assets/logo.svg": b"<svg/>",
    }


def manifest_of(files: Mapping[str, bytes]) -> bytes:
    lines = [
        f"{hashlib.sha256(data).hexdigest()} {len(data)} {path}\n"
        for path, data in sorted(files.items())
    ]
    return "".join(lines).encode()


@dataclass
class M:
    """One raw tar member to craft."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    mode: int = 0o644
    size: int | None = None  # header size, if it must lie
    pax: dict[str, str] = field(default_factory=dict)


def tar_bytes(members: Iterable[M], *, fmt: int = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    """An uncompressed tar of ``members``; ``end=False`` leaves out the end-of-archive
    blocks and padding, so more members can be appended."""
    buf = io.BytesIO()
    tf = tarfile.open(  # noqa: SIM115 - closed in the finally below
        fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
    )
    try:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.mode = m.mode
            info.linkname = m.linkname
            info.pax_headers = dict(m.pax)
            if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
                info.size = len(m.data) if m.size is None else m.size
                tf.addfile(info, io.BytesIO(m.data) if info.size <= len(m.data) else None)
            else:
                tf.addfile(info)
        if not end:
            return buf.getvalue()
    finally:
        tf.close()
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def package_members(files: Mapping[str, bytes], *, signature: bytes | None = None) -> list[M]:
    """Members of a well-formed package holding ``files``."""
    members = [M("MANIFEST", manifest_of(files))]
    if signature is not None:
        members.append(M("SIGNATURE", signature))
    members += [M(path, data) for path, data in sorted(files.items())]
    return members


def package_bytes(files: Mapping[str, bytes] | None = None, **kw: bytes | None) -> bytes:
    return gz(tar_bytes(package_members(files or {"app.toml": APP_TOML}, **kw)))


def list_tree(root: Path) -> dict[str, bytes]:
    """All regular files below ``root`` (path -> bytes); fails on anything else."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            assert not path.is_symlink(), path
        for name in filenames:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out
