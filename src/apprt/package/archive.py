"""Build and read ``.apppkg`` archives.

Workflow
--------
1. A developer's app directory holds ``app.toml``, ``backend/``, ``frontend/`` and
   optionally ``README.md``, ``LICENSE*``, ``CHANGELOG.md``, an icon and ``wheels/``.
2. :func:`build_package` turns it into a deterministic ``.tar.gz``: the same files
   always give the same bytes, so a package's sha256 identifies its content. The
   first member, ``MANIFEST``, lists every file with its size and sha256.
3. :func:`read_package` streams an archive once, refuses anything unsafe or
   inconsistent with :class:`~apprt.errors.PackageError`, and returns a
   :class:`PackageInfo` describing what it proved. Signatures are handled by
   :mod:`apprt.package.signing`, extraction by :mod:`apprt.package.extract`.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from apprt.package import build_package, read_package
    >>> workdir = tempfile.TemporaryDirectory()
    >>> tmp = Path(workdir.name)
    >>> app = tmp / "hello"
    >>> (app / "backend").mkdir(parents=True)
    >>> _ = (app / "app.toml").write_text('name = "hello"\\n')
    >>> _ = (app / "backend" / "main.py").write_text("async def app(scope, receive, send): ...\\n")
    >>> info = build_package(app, tmp / "hello.apppkg")
    >>> [f.path for f in info.files]
    ['app.toml', 'backend/main.py']
    >>> read_package(tmp / "hello.apppkg") == info
    True
    >>> build_package(app, tmp / "again.apppkg").archive_sha256 == info.archive_sha256
    True
    >>> workdir.cleanup()
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from apprt.errors import PackageError, Problem
from apprt.package._format import (
    FileEntry,
    PackageInfo,
    Signature,
    package_error,
    render_manifest,
)
from apprt.package._fs import AtomicFile, listdir, open_dir, open_file_beneath
from apprt.package._paths import (
    APP_TOML,
    EXCLUDED_DIRS,
    EXCLUDED_SUFFIXES,
    MANIFEST_NAME,
    REBUILD_HINT,
    TOP_DIRS,
    TOP_FILES,
    PathSet,
    check_layout,
    check_path,
    display,
)
from apprt.package._tar import CHUNK, ArchiveWriter, Source, scan
from apprt.package.limits import DEFAULT_LIMITS, PackageLimits

__all__ = [
    "FileEntry",
    "PackageInfo",
    "Signature",
    "build_package",
    "read_package",
]


def read_package(source: Source, *, limits: PackageLimits = DEFAULT_LIMITS) -> PackageInfo:
    """Read and verify a package, streaming it once.

    ``source`` is a path or a binary file object positioned at the start of the
    archive (an upload stream works: it is only read forward).

    Checks, failing with :class:`~apprt.errors.PackageError`: gzip and tar
    well-formedness (CRC included, nothing after the end), the resource ``limits``
    (a compression bomb is stopped as soon as it is detected), that every member is
    a regular file with a safe relative UTF-8 path, MANIFEST first and well formed,
    SIGNATURE (optional) second and well formed, no duplicate or colliding paths,
    every file listed in MANIFEST with the right size and sha256, and nothing
    listed missing. Signatures are parsed, not verified: see
    :func:`apprt.package.verify_signatures`.
    """
    return scan(source, limits)


@dataclass(frozen=True, slots=True)
class _SourceFile:
    path: str  # path inside the package
    root: int  # directory fd the file is read beneath
    rel: str  # path below ``root``
    executable: bool
    origin: str  # for messages


class _Collector:
    """Walks the source directories without following symlinks."""

    def __init__(self) -> None:
        self.files: list[_SourceFile] = []
        self.problems: list[Problem] = []

    def refuse(self, origin: str, reason: str, hint: str) -> None:
        self.problems.append(Problem(reason=reason, file=display(origin), hint=hint))

    def kind_problem(self, origin: str, mode: int) -> None:
        if stat.S_ISLNK(mode):
            self.refuse(
                origin,
                "symbolic links are not packaged (and never followed)",
                "replace the link with the file it points to, or remove it",
            )
        else:
            self.refuse(
                origin,
                "not a regular file or directory (a FIFO, socket or device)",
                "remove it from the app directory",
            )

    def add(self, path: str, root: int, rel: str, st: os.stat_result, origin: str) -> None:
        self.files.append(
            _SourceFile(
                path=path, root=root, rel=rel, executable=bool(st.st_mode & 0o100), origin=origin
            )
        )

    def walk_app(self, root: int, src: Path) -> None:
        for name in listdir(root):
            if name.startswith("."):
                continue
            origin = str(src / name)
            st = os.stat(name, dir_fd=root, follow_symlinks=False)
            if name in TOP_FILES or name.startswith("LICENSE"):
                if stat.S_ISREG(st.st_mode):
                    self.add(name, root, name, st, origin)
                elif stat.S_ISDIR(st.st_mode):
                    if name in TOP_FILES:  # a LICENSES/ directory is simply not packaged
                        self.refuse(origin, f"`{name}` must be a file", "rename the directory")
                else:
                    self.kind_problem(origin, st.st_mode)
            elif name in TOP_DIRS:
                if stat.S_ISDIR(st.st_mode):
                    if name == "wheels":
                        self.walk_wheels(root, name, Path(origin))
                    else:
                        self.walk_tree(root, name, name, Path(origin))
                elif stat.S_ISREG(st.st_mode):
                    self.refuse(origin, f"`{name}` must be a directory", "rename it")
                else:
                    self.kind_problem(origin, st.st_mode)
            # Anything else at the top (tests/, docs/, build files...) is not packaged.

    def walk_tree(self, root: int, rel: str, prefix: str, origin: Path) -> None:
        fd = open_dir(rel, root)
        try:
            names = listdir(fd)
            for name in names:
                if name.startswith("."):
                    continue
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                child = f"{rel}/{name}"
                path = f"{prefix}/{name}"
                if stat.S_ISDIR(st.st_mode):
                    if name not in EXCLUDED_DIRS:
                        self.walk_tree(root, child, path, origin / name)
                elif stat.S_ISREG(st.st_mode):
                    if not name.endswith(EXCLUDED_SUFFIXES):
                        self.add(path, root, child, st, str(origin / name))
                else:
                    self.kind_problem(str(origin / name), st.st_mode)
        finally:
            os.close(fd)

    def walk_wheels(self, root: int, rel: str, origin: Path) -> None:
        fd = open_dir(rel, root)
        try:
            for name in listdir(fd):
                if name.startswith("."):
                    continue
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                where = str(origin / name)
                if stat.S_ISREG(st.st_mode) and name.endswith(".whl"):
                    self.add(f"wheels/{name}", root, f"{rel}/{name}", st, where)
                elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                    self.refuse(
                        where,
                        "the wheels directory may only hold .whl files",
                        "remove it, or move it out of the wheels directory",
                    )
                else:
                    self.kind_problem(where, st.st_mode)
        finally:
            os.close(fd)


class _VerifyingReader:
    """Reads exactly ``entry.size`` bytes of a source file and checks they hash
    to ``entry.sha256`` (the file must not change between hashing and packing)."""

    def __init__(self, fd: int, entry: FileEntry, origin: str) -> None:
        self._fd = fd
        self._entry = entry
        self._origin = origin
        self._left = entry.size
        self._hash = hashlib.sha256()

    def _changed(self) -> PackageError:
        return package_error(
            "the file changed while the package was being built",
            file=display(self._origin),
            hint="build again once nothing writes to the app directory",
        )

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        if want == 0:
            return b""
        data = os.read(self._fd, want)
        if not data:
            raise self._changed()
        self._left -= len(data)
        self._hash.update(data)
        return data

    def check(self) -> None:
        if self._left or os.read(self._fd, 1) or self._hash.hexdigest() != self._entry.sha256:
            raise self._changed()


def _hash_file(fd: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _open_root(path: Path, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise package_error(
            f"cannot open the {what}: {exc.strerror}",
            file=str(path),
            hint=f"pass an existing {what}",
        ) from None


def build_package(
    src_dir: Path,
    out: Path,
    *,
    wheels_dir: Path | None = None,
    limits: PackageLimits = DEFAULT_LIMITS,
) -> PackageInfo:
    """Build a deterministic, unsigned ``.apppkg`` from an app directory.

    Packs ``app.toml`` (required), ``README.md``, ``README``, ``CHANGELOG.md``,
    ``LICENSE*``, ``icon.png``, ``icon.svg``, ``backend/``, ``frontend/`` and
    ``wheels/*.whl`` from ``src_dir``, plus every ``*.whl`` directly in
    ``wheels_dir`` (as ``wheels/<name>``). Skips dot-files and dot-directories,
    ``__pycache__/``, ``node_modules/``, ``*.pyc``/``*.pyo`` and anything else at
    the top (``tests/``, ``pyproject.toml``...). Refuses symlinks and special files.

    Writes ``out`` atomically (a temporary file beside it, fsync, rename) after
    reading the result back with :func:`read_package`, so a package that would be
    refused is never written. Returns the read-back :class:`PackageInfo`.
    """
    roots: list[int] = []
    try:
        collector = _Collector()
        src_root = _open_root(src_dir, "app directory")
        roots.append(src_root)
        collector.walk_app(src_root, src_dir)
        if wheels_dir is not None:
            wheels_root = _open_root(wheels_dir, "wheels directory")
            roots.append(wheels_root)
            for name in listdir(wheels_root):
                st = os.stat(name, dir_fd=wheels_root, follow_symlinks=False)
                if name.startswith(".") or not name.endswith(".whl"):
                    continue
                origin = str(wheels_dir / name)
                if stat.S_ISREG(st.st_mode):
                    collector.add(f"wheels/{name}", wheels_root, name, st, origin)
                else:
                    collector.kind_problem(origin, st.st_mode)
        sources = _check_sources(collector, src_dir, limits)

        entries: list[FileEntry] = []
        for source in sources:
            fd = _open_source(source)
            try:
                size, digest = _hash_file(fd)
            finally:
                os.close(fd)
            entries.append(FileEntry(source.path, size, digest, source.executable))
        _check_sizes(entries, sources, limits)
        manifest = render_manifest(entries)
        if len(manifest) > limits.max_metadata_size:
            raise package_error(
                f"the MANIFEST would be {len(manifest)} bytes, more than the limit of "
                f"{limits.max_metadata_size}",
                file=str(src_dir),
                hint="ship fewer files",
            )

        with AtomicFile(out) as atomic:
            writer = ArchiveWriter(atomic.file)
            writer.add_bytes(MANIFEST_NAME, manifest)
            for entry, source in zip(entries, sources, strict=True):
                fd = _open_source(source)
                try:
                    reader = _VerifyingReader(fd, entry, source.origin)
                    writer.add_stream(entry, reader)
                    reader.check()
                finally:
                    os.close(fd)
            writer.close()
            atomic.flush()
            atomic.file.seek(0)
            info = scan(atomic.file, limits, label=str(out))
            atomic.commit()
        return info
    finally:
        for fd in roots:
            os.close(fd)


def _open_source(source: _SourceFile) -> int:
    try:
        return open_file_beneath(source.root, source.rel)
    except OSError as exc:
        reason = (
            "it became a symbolic link while the package was being built"
            if exc.errno == errno.ELOOP
            else f"cannot read it: {exc.strerror or exc}"
        )
        raise package_error(
            reason, file=display(source.origin), hint="check the file and build again"
        ) from None


def _check_sources(
    collector: _Collector, src_dir: Path, limits: PackageLimits
) -> list[_SourceFile]:
    problems = list(collector.problems)
    paths = PathSet()
    origins: dict[str, str] = {}
    for source in collector.files:
        if source.path in origins:
            problems.append(
                Problem(
                    reason=f"`{display(source.path)}` also comes from "
                    f"{display(origins[source.path])}",
                    file=display(source.origin),
                    hint="keep one copy",
                )
            )
            continue
        origins[source.path] = source.origin
        problem = check_path(source.path, limits) or check_layout(source.path)
        problem = problem or paths.add(source.path)
        if problem is not None:
            hint = "" if problem.hint == REBUILD_HINT else problem.hint
            problems.append(Problem(problem.reason, display(source.origin), "", hint))
    sources = sorted(collector.files, key=lambda s: s.path)
    if not any(s.path == APP_TOML for s in sources):
        problems.append(
            Problem(
                reason="the app directory has no app.toml",
                file=str(src_dir),
                hint="create app.toml describing the app (see docs/package-format.md)",
            )
        )
    if len(sources) + 1 > limits.max_members:
        problems.append(
            Problem(
                reason=f"{len(sources)} files, more than the limit of {limits.max_members - 1}",
                file=str(src_dir),
                hint="ship fewer files (bundle the frontend, use wheels for dependencies)",
            )
        )
    if problems:
        raise PackageError(problems, title=f"cannot build a package from {src_dir}")
    return sources


def _check_sizes(
    entries: list[FileEntry], sources: list[_SourceFile], limits: PackageLimits
) -> None:
    problems: list[Problem] = []
    total = 0
    for entry, source in zip(entries, sources, strict=True):
        total += entry.size
        if entry.size > limits.max_member_size:
            problems.append(
                Problem(
                    reason=f"{entry.size} bytes, more than the limit of {limits.max_member_size}",
                    file=display(source.origin),
                    hint="keep each file under the limit",
                )
            )
        elif entry.path == APP_TOML and entry.size > limits.max_metadata_size:
            problems.append(
                Problem(
                    reason=f"app.toml is larger than {limits.max_metadata_size} bytes",
                    file=display(source.origin),
                    hint="keep app.toml small",
                )
            )
    if total > limits.max_total_size:
        problems.append(
            Problem(
                reason=f"the files add up to {total} bytes, more than the limit of "
                f"{limits.max_total_size}",
                hint="make the package smaller",
            )
        )
    if problems:
        raise PackageError(problems, title="cannot build the package")
