"""The streaming, single-pass, hostile-input reader and the deterministic writer.

:func:`scan` is the one place an ``.apppkg`` is parsed. It inflates the gzip stream
itself (so it can count compressed and inflated bytes and stop a bomb early), feeds
the inflated bytes to :mod:`tarfile` in stream mode (``r|``, never seeking), checks
every member against the safety rules and the MANIFEST, and hands each verified
content file to an optional :class:`Sink` (extraction, re-signing) as a stream.
Nothing but MANIFEST, SIGNATURE and app.toml is ever held in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import IO, BinaryIO, ParamSpec, Protocol, TypeVar

from apprt.errors import PackageError, Problem
from apprt.package._format import (
    FileEntry,
    PackageInfo,
    Signature,
    package_error,
    parse_manifest,
    parse_signatures,
    sha256_hex,
)
from apprt.package._paths import (
    APP_TOML,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    PathSet,
    check_layout,
    check_path,
    display,
)
from apprt.package.limits import PackageLimits

#: gzip level used by the builder; part of the format's determinism.
COMPRESSLEVEL = 9
CHUNK = 64 * 1024
_TAIL = 64 * 1024
_MAX_EXT_HEADER = 64 * 1024
_MAX_EXT_CHAIN = 8
_EXT_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_CORRUPT_HINT = "the file is damaged or was tampered with; download or build it again"

Source = str | os.PathLike[str] | BinaryIO


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Sink(Protocol):
    """Receives a package's members as the reader verifies them."""

    def start(self, manifest: bytes, signatures: Sequence[Signature]) -> None:
        """Called once, after MANIFEST (and SIGNATURE) and before the first content file."""

    def member(self, entry: FileEntry, data: MemberStream) -> None:
        """Called for each content file; ``data.read(n)`` yields its bytes.

        The digest is checked after this returns, so whatever the sink wrote must
        stay provisional until the whole scan succeeded.
        """


class InflatingReader:
    """A read-only file object over a single-member gzip stream, with limits.

    Counts compressed bytes consumed and bytes inflated, refuses to inflate past
    ``limits.max_stream_size`` or past ``limits.max_compression_ratio``, hashes the
    raw archive bytes, and remembers the last bytes it returned so the caller can
    check what follows the end of the tar archive.
    """

    def __init__(self, raw: IO[bytes], limits: PackageLimits, label: str) -> None:
        self._raw = raw
        self._limits = limits
        self._label = label
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._buf = bytearray()
        self._tail = bytearray()
        self._hash = hashlib.sha256()
        self._started = False
        self.compressed = 0
        self.inflated = 0
        self.returned = 0

    def _error(self, reason: str, hint: str = _CORRUPT_HINT) -> PackageError:
        return package_error(reason, file=self._label, hint=hint)

    def _read_raw(self) -> bytes:
        data = self._raw.read(CHUNK)
        if data:
            self._hash.update(data)
            self.compressed += len(data)
        return data

    def _first_raw(self) -> bytes:
        data = b""
        while len(data) < 3:
            more = self._read_raw()
            if not more:
                break
            data += more
        if data[:3] != b"\x1f\x8b\x08":
            raise self._error(
                "not a gzip-compressed archive" if data else "the file is empty",
                "an .apppkg is a .tar.gz made by `apprt app pack`",
            )
        return data

    def _fill(self) -> bool:
        """Inflate more into the buffer; ``False`` once the gzip stream has ended."""
        while not self._inflater.eof:
            data = self._inflater.unconsumed_tail
            if not data:
                if not self._started:
                    data = self._first_raw()
                    self._started = True
                else:
                    data = self._read_raw()
                if not data:
                    raise self._error("the archive is truncated (the gzip stream does not end)")
            try:
                out = self._inflater.decompress(data, CHUNK)
            except zlib.error as exc:
                raise self._error(f"corrupt gzip data ({exc})") from None
            if out:
                self.inflated += len(out)
                self._check_limits()
                self._buf += out
                return True
        return False

    def _check_limits(self) -> None:
        limits = self._limits
        if self.inflated > limits.max_stream_size:
            raise self._error(
                f"the archive inflates to more than {limits.max_stream_size} bytes",
                "packages are limited to 256 MiB of files; remove large files",
            )
        consumed = max(self.compressed - len(self._inflater.unconsumed_tail), 1)
        if (
            self.inflated > limits.ratio_floor
            and self.inflated > limits.max_compression_ratio * consumed
        ):
            raise self._error(
                f"the archive inflates more than {limits.max_compression_ratio:g}:1 "
                f"({self.inflated} bytes from the first {consumed} compressed bytes): "
                "refusing a possible compression bomb",
                "remove highly repetitive files (e.g. large blocks of zeros) from the package",
            )

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            size = len(self._buf)
        while len(self._buf) < size and self._fill():
            pass
        out = bytes(self._buf[:size])
        del self._buf[:size]
        self.returned += len(out)
        self._tail += out
        if len(self._tail) > 2 * _TAIL:
            del self._tail[:-_TAIL]
        return out

    def finish(self, end_offset: int) -> None:
        """Check that only NUL bytes follow ``end_offset`` (the end-of-archive
        marker), that the gzip stream ends properly (zlib checks its CRC and length)
        and that no bytes follow it."""
        start = self.returned - len(self._tail)
        if not start <= end_offset <= self.returned:
            raise self._error("the tar archive ends in an unexpected place")
        garbage = self._error(
            "data follows the end of the tar archive (a damaged header or hidden data)"
        )
        after = self._tail[end_offset - start :]
        if after.count(0) != len(after):
            raise garbage
        while True:
            if self._buf.count(0) != len(self._buf):
                raise garbage
            self.returned += len(self._buf)
            self._buf.clear()
            if not self._fill():
                break
        if self._inflater.unused_data or self._read_raw():
            raise self._error("data follows the end of the gzip stream")

    @property
    def archive_sha256(self) -> str:
        return self._hash.hexdigest()

    # The rest of the file-object protocol tarfile's type hints ask for.
    def tell(self) -> int:
        return self.returned

    def write(self, b: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only")

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("not seekable")

    def close(self) -> None:
        pass


class MemberStream:
    """The bytes of one content member, hashed as they are read."""

    def __init__(self, fileobj: IO[bytes], entry: FileEntry) -> None:
        self._f = fileobj
        self._entry = entry
        self._left = entry.size
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = _tar_call(self._f.read, want)
        if not data:
            raise package_error(
                "the archive ends in the middle of this file",
                file=display(self._entry.path),
                hint=_CORRUPT_HINT,
            )
        self._left -= len(data)
        self._hash.update(data)
        return data

    def drain(self) -> None:
        while self._left:
            self.read(CHUNK)

    def verify(self) -> None:
        self.drain()
        if self._hash.hexdigest() != self._entry.sha256:
            raise package_error(
                "the content does not match its sha256 in MANIFEST",
                file=display(self._entry.path),
                hint=_CORRUPT_HINT,
            )


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses oversized or endlessly chained extended headers and sparse files
    *before* :mod:`tarfile` reads them into memory or recurses on them."""

    label = ""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        label = self.label
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise package_error(
                "sparse files are not allowed", file=display(self.name), hint=_CORRUPT_HINT
            )
        if self.type in _EXT_TYPES:
            if not 0 <= self.size <= _MAX_EXT_HEADER:
                raise package_error(
                    f"an extended tar header is {self.size} bytes long",
                    file=label,
                    location=f"offset {self.offset}",
                    hint=_CORRUPT_HINT,
                )
            depth: int = getattr(tarfile_, "_apprt_depth", 0)
            if depth >= _MAX_EXT_CHAIN:
                raise package_error(
                    "too many chained extended tar headers",
                    file=label,
                    location=f"offset {self.offset}",
                    hint=_CORRUPT_HINT,
                )
            tarfile_._apprt_depth = depth + 1  # type: ignore[attr-defined]
            try:
                return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]
            finally:
                tarfile_._apprt_depth = depth  # type: ignore[attr-defined]
        return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]


# Exceptions tarfile lets escape on malformed input (besides its own TarError).
_TAR_FAILURES = (tarfile.TarError, EOFError, ValueError, OverflowError, RecursionError, zlib.error)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _tar_call(fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    try:
        return fn(*args, **kwargs)
    except PackageError:
        raise
    except _TAR_FAILURES as exc:
        raise package_error(
            f"corrupt tar data ({exc or type(exc).__name__})", hint=_CORRUPT_HINT
        ) from None


def _member_kind(member: tarfile.TarInfo) -> str:
    kinds = {
        tarfile.SYMTYPE: "a symbolic link",
        tarfile.LNKTYPE: "a hard link",
        tarfile.DIRTYPE: "a directory",
        tarfile.CHRTYPE: "a character device",
        tarfile.BLKTYPE: "a block device",
        tarfile.FIFOTYPE: "a FIFO",
        tarfile.CONTTYPE: "a contiguous file",
    }
    if member.sparse is not None:
        return "a sparse file"
    return kinds.get(member.type, f"of unknown tar type {member.type!r}")


def _read_small(tf: tarfile.TarFile, member: tarfile.TarInfo, limits: PackageLimits) -> bytes:
    if member.size > limits.max_metadata_size:
        raise package_error(
            f"{member.name} is {member.size} bytes, more than the limit of "
            f"{limits.max_metadata_size}",
            file=member.name,
        )
    fobj = _tar_call(tf.extractfile, member)
    assert fobj is not None  # regular file
    data = _tar_call(fobj.read, member.size)
    if len(data) != member.size:
        raise package_error(
            "the archive ends in the middle of this file", file=member.name, hint=_CORRUPT_HINT
        )
    return data


def scan(
    source: Source, limits: PackageLimits, sink: Sink | None = None, *, label: str | None = None
) -> PackageInfo:
    """Read and verify a package in one pass; see :func:`apprt.package.read_package`.

    ``label`` names the archive in error messages (default: its path or file name).
    """
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            raw = open(path, "rb")  # noqa: PTH123, SIM115 - closed below
        except OSError as exc:
            raise package_error(
                f"cannot open the package: {exc.strerror}",
                file=path,
                hint="check the path",
            ) from None
        with raw:
            return _scan(raw, label or path, limits, sink)
    if label is None:
        name = getattr(source, "name", None)
        label = name if isinstance(name, str) else "<stream>"
    return _scan(source, label, limits, sink)


def _scan(raw: IO[bytes], label: str, limits: PackageLimits, sink: Sink | None) -> PackageInfo:
    reader = InflatingReader(raw, limits, label)
    try:
        tf = tarfile.open(  # noqa: SIM115 - closed below
            fileobj=reader,
            mode="r|",
            tarinfo=type("_ScanTarInfo", (_GuardedTarInfo,), {"label": label}),
            encoding="utf-8",
            errors="surrogateescape",
        )
    except PackageError:
        raise
    except _TAR_FAILURES as exc:
        raise package_error(
            f"not a tar archive inside the gzip stream ({exc})",
            file=label,
            hint="an .apppkg is a .tar.gz made by `apprt app pack`",
        ) from None

    count = 0
    total = 0
    manifest: bytes | None = None
    expected: dict[str, FileEntry] = {}
    order: list[str] = []
    signatures: list[Signature] = []
    executable: dict[str, bool] = {}
    paths = PathSet()
    app_toml: bytes | None = None
    started = False

    with tf:
        while True:
            member = _tar_call(tf.next)
            if member is None:
                break
            count += 1
            if count > limits.max_members:
                raise package_error(
                    f"the archive has more than {limits.max_members} members",
                    file=label,
                    hint="ship fewer files (bundle the frontend, use wheels for dependencies)",
                )
            name = member.name
            problem = check_path(name, limits)
            if problem is not None:
                raise PackageError([problem], title="invalid package")
            if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.sparse is not None:
                raise package_error(
                    f"the member is {_member_kind(member)}; only regular files are allowed",
                    file=display(name),
                )
            size = member.size
            if size < 0:
                raise package_error("the member has a negative size", file=display(name))
            if size > limits.max_member_size:
                raise package_error(
                    f"the file is {size} bytes, more than the limit of {limits.max_member_size}",
                    file=display(name),
                    hint="keep each file under the limit (large assets belong elsewhere)",
                )
            total += size
            if total > limits.max_total_size:
                raise package_error(
                    f"the files add up to more than {limits.max_total_size} bytes",
                    file=display(name),
                    hint="make the package smaller",
                )

            if count == 1:
                if name != MANIFEST_NAME:
                    raise package_error(
                        f"the first member must be MANIFEST, not `{display(name)}`", file=label
                    )
                manifest = _read_small(tf, member, limits)
                for entry in parse_manifest(manifest, limits):
                    expected[entry.path] = entry
                    order.append(entry.path)
                continue
            if name == MANIFEST_NAME:
                raise package_error("MANIFEST appears twice", file=MANIFEST_NAME)
            if name == SIGNATURE_NAME:
                if count != 2:
                    raise package_error(
                        "SIGNATURE must come right after MANIFEST, once", file=SIGNATURE_NAME
                    )
                signatures = parse_signatures(_read_small(tf, member, limits))
                continue

            assert manifest is not None
            if not started:
                started = True
                if sink is not None:
                    sink.start(manifest, signatures)
            problem = check_layout(name) or paths.add(name)
            if problem is not None:
                raise PackageError([problem], title="invalid package")
            listed = expected.get(name)
            if listed is None:
                raise package_error(
                    "the file is in the archive but not listed in MANIFEST",
                    file=display(name),
                    hint=_CORRUPT_HINT,
                )
            if size != listed.size:
                raise package_error(
                    f"the file is {size} bytes but MANIFEST says {listed.size}",
                    file=display(name),
                    hint=_CORRUPT_HINT,
                )
            is_exec = bool(member.mode & 0o100)
            entry = replace(listed, executable=is_exec)
            executable[name] = is_exec
            fobj = _tar_call(tf.extractfile, member)
            assert fobj is not None
            stream = MemberStream(fobj, entry)
            if name == APP_TOML:
                if size > limits.max_metadata_size:
                    raise package_error(
                        f"app.toml is {size} bytes, more than the limit of "
                        f"{limits.max_metadata_size}",
                        file=APP_TOML,
                        hint="keep app.toml small",
                    )
                app_toml = stream.read()
                stream.verify()
                if sink is not None:
                    sink.member(entry, MemberStream(io.BytesIO(app_toml), entry))
            else:
                if sink is not None:
                    sink.member(entry, stream)
                stream.verify()

        if manifest is None:
            raise package_error("the archive is empty (no MANIFEST)", file=label)
        missing = [path for path in order if path not in executable]
        if missing:
            problems = [
                Problem(
                    reason="listed in MANIFEST but missing from the archive",
                    file=display(path),
                    hint=_CORRUPT_HINT,
                )
                for path in missing[:20]
            ]
            if len(missing) > 20:
                problems.append(Problem(reason=f"... and {len(missing) - 20} more", file=label))
            raise PackageError(problems, title="invalid package")
        reader.finish(tf.offset)

    assert app_toml is not None  # listed (parse_manifest checks) and present (checked above)
    try:
        app_toml_text = app_toml.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise package_error(
            f"app.toml is not valid UTF-8 (byte {exc.start})",
            file=APP_TOML,
            hint="save app.toml as UTF-8",
        ) from None
    return PackageInfo(
        manifest_text=app_toml_text,
        files=tuple(replace(expected[p], executable=executable[p]) for p in order),
        manifest_digest=sha256_hex(manifest),
        signatures=tuple(signatures),
        archive_sha256=reader.archive_sha256,
        archive_size=reader.compressed,
    )


class ArchiveWriter:
    """Writes the canonical archive: PAX tar, fixed metadata, gzip without name or mtime.

    Callers add members in format order (MANIFEST, SIGNATURE, content sorted by
    path); the writer makes each member's header deterministic.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=out, compresslevel=COMPRESSLEVEL, mtime=0
        )
        self._tar = tarfile.open(  # noqa: SIM115 - closed in close()
            fileobj=self._gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8"
        )

    @staticmethod
    def _info(name: str, size: int, executable: bool) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0
        info.mode = 0o755 if executable else 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        return info

    def add_bytes(self, name: str, data: bytes, *, executable: bool = False) -> None:
        self._tar.addfile(self._info(name, len(data), executable), io.BytesIO(data))

    def add_stream(self, entry: FileEntry, stream: Readable) -> None:
        info = self._info(entry.path, entry.size, entry.executable)
        self._tar.addfile(info, stream)

    def close(self) -> None:
        self._tar.close()
        self._gz.close()
