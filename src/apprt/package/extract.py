"""Unpack a package safely: all or nothing, and never outside the destination.

Workflow
--------
:func:`extract_package` runs the same single streaming pass as
:func:`~apprt.package.read_package` and writes each file as soon as its header
passed the checks, into a fresh temporary directory created beside ``dest``.
Directories are created by the extractor itself and every file and directory is
opened relative to its parent's file descriptor with ``O_NOFOLLOW`` (files with
``O_CREAT | O_EXCL`` too), so nothing is ever followed and nothing is overwritten.
Once the whole archive verified (every digest, the MANIFEST, the gzip CRC), the
temporary directory is renamed to ``dest``; on any failure it is removed, so
``dest`` either holds exactly the package or does not exist.

Files get mode 0644 (0755 when the archive marks them executable), directories
0755; ownership, timestamps and any other tar metadata are ignored.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from apprt.package import build_package, extract_package
    >>> workdir = tempfile.TemporaryDirectory()
    >>> tmp = Path(workdir.name)
    >>> (tmp / "app" / "frontend").mkdir(parents=True)
    >>> _ = (tmp / "app" / "app.toml").write_text('name = "hello"\\n')
    >>> _ = (tmp / "app" / "frontend" / "index.js").write_text("export {};\\n")
    >>> _ = build_package(tmp / "app", tmp / "hello.apppkg")
    >>> info = extract_package(tmp / "hello.apppkg", tmp / "unpacked")
    >>> sorted(str(p.relative_to(tmp / "unpacked")) for p in (tmp / "unpacked").rglob("*"))
    ['app.toml', 'frontend', 'frontend/index.js']
    >>> workdir.cleanup()
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from apprt.errors import PackageError
from apprt.package._format import FileEntry, PackageInfo, Signature, package_error
from apprt.package._fs import fsync_dir, open_dir
from apprt.package._paths import display
from apprt.package._tar import CHUNK, MemberStream, Source, scan
from apprt.package.limits import DEFAULT_LIMITS, PackageLimits

__all__ = ["extract_package"]

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Errors that mean the archive's paths clash with each other on this file system
# (e.g. two names equal on a case-insensitive one): the package's fault, not ours.
_CLASH_ERRNOS = frozenset({errno.EEXIST, errno.ENOTDIR, errno.ELOOP, errno.EISDIR})


class _ExtractSink:
    """Writes verified members below an open directory, never following links."""

    def __init__(self, root_fd: int) -> None:
        self._root = root_fd
        self._created: set[str] = set()

    def start(self, manifest: bytes, signatures: Sequence[Signature]) -> None:
        pass

    def _clash(self, path: str, exc: OSError) -> PackageError:
        return package_error(
            f"cannot create it: {exc.strerror} (the name clashes with another member)",
            file=display(path),
            hint="rename the colliding files and rebuild the package",
        )

    def _open_parent(self, path: str) -> int:
        parts = path.split("/")[:-1]
        fd = os.dup(self._root)
        try:
            for i, part in enumerate(parts):
                prefix = "/".join(parts[: i + 1])
                try:
                    if prefix not in self._created:
                        os.mkdir(part, 0o700, dir_fd=fd)
                        self._created.add(prefix)
                        nxt = open_dir(part, fd)
                        os.fchmod(nxt, 0o755)
                    else:
                        nxt = open_dir(part, fd)
                except OSError as exc:
                    if exc.errno in _CLASH_ERRNOS:
                        raise self._clash(path, exc) from None
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def member(self, entry: FileEntry, data: MemberStream) -> None:
        parent = self._open_parent(entry.path)
        try:
            try:
                fd = os.open(entry.path.rsplit("/", 1)[-1], _FILE_FLAGS, 0o600, dir_fd=parent)
            except OSError as exc:
                if exc.errno in _CLASH_ERRNOS:
                    raise self._clash(entry.path, exc) from None
                raise
        finally:
            os.close(parent)
        try:
            while chunk := data.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o755 if entry.executable else 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)


def extract_package(
    source: Source, dest: Path, *, limits: PackageLimits = DEFAULT_LIMITS
) -> PackageInfo:
    """Verify a package and unpack it into ``dest``, which must not exist yet.

    Performs every check of :func:`~apprt.package.read_package` (signatures are
    not checked: call :func:`~apprt.package.require_valid_signature` on the result,
    or on :func:`~apprt.package.read_package` before extracting). ``dest``'s parent
    directories are created if needed. Raises :class:`~apprt.errors.PackageError`
    if the package is refused or ``dest`` exists; ``OSError`` for environment
    failures (disk full, permissions). In both cases nothing is left behind.
    """
    dest = Path(dest)
    if dest.is_symlink() or dest.exists():
        raise package_error(
            "the destination already exists",
            file=str(dest),
            hint="extract into a new directory (remove the old one first if it is unwanted)",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        root_fd = open_dir(str(tmp))
        try:
            info = scan(source, limits, _ExtractSink(root_fd))
            os.fchmod(root_fd, 0o755)
            os.fsync(root_fd)
        finally:
            os.close(root_fd)
        if dest.is_symlink() or dest.exists():
            raise package_error(
                "the destination appeared while the package was being extracted",
                file=str(dest),
                hint="extract into a new directory",
            )
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(dest.parent)
    return info
