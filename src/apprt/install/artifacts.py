"""Unpacked app trees, content-addressed and shared by every organization.

A package is unpacked once per archive digest into ``<root>/<sha256>/`` and made
read-only; every installation of that exact package, in any organization, runs
from the same tree (the sandbox mounts it read-only too). Unpacking goes through
:func:`apprt.package.extract_package`: verified, all-or-nothing, never outside
the target.

    >>> from pathlib import Path
    >>> store = ArtifactStore(Path("/tmp/apprt-doc-artifacts"))
    >>> store.path_for("ab" * 32).name == "ab" * 32
    True
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from apprt.blobs.store import BlobStore, check_digest
from apprt.package import PackageInfo, extract_package


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            mode = path.stat().st_mode
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        for name in dirnames:
            (Path(dirpath) / name).chmod(0o555)
    root.chmod(0o555)


def _make_writable(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        Path(dirpath).chmod(0o755)
        for name in dirnames:
            (Path(dirpath) / name).chmod(0o755)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest

    def ensure(self, blobs: BlobStore, digest: str) -> Path:
        """The unpacked tree of package ``digest``, unpacking it from ``blobs`` if needed.

        Idempotent and safe to repeat after a crash: a tree is only ever visible
        complete (extraction renames a finished temp directory into place).
        """
        target = self.path_for(digest)
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        with blobs.open(digest) as package:
            try:
                extract_package(package, target)
            except FileExistsError:  # a concurrent install unpacked it first
                return target
        _make_read_only(target)
        return target

    def info(self, blobs: BlobStore, digest: str) -> PackageInfo:
        from apprt.package import read_package

        with blobs.open(digest) as package:
            return read_package(package)

    def remove(self, digest: str) -> None:
        """Delete an unpacked tree (when no installation uses it any more)."""
        target = self.path_for(digest)
        if target.exists():
            _make_writable(target)
            shutil.rmtree(target)
