"""Property tests: round trip, determinism, hostile archives, corrupted bytes."""

from __future__ import annotations

import functools
import io
import os
import random
import tarfile
import tempfile
import unicodedata
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from apprt.errors import PackageError
from apprt.package import (
    PackageInfo,
    build_package,
    extract_package,
    read_package,
    sign_package,
)

from ._helpers import APP_TOML, M, gz, list_tree, manifest_of, sample_files, tar_bytes, write_tree

PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- file trees ---------------------------------------------------------------------

_CHARS = [*"abcxyzABCXYZ0129-_ +=~,", "é", "ü", "ß", "Ω", "日", "本", "🙂"]
component = st.text(alphabet=_CHARS, min_size=1, max_size=8)
content_path = st.builds(
    lambda top, parts: "/".join([top, *parts]),
    st.sampled_from(["backend", "frontend"]),
    st.lists(component, min_size=1, max_size=3),
)


def tidy(files: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that would collide (case, normalisation, file vs directory)."""
    out: dict[str, bytes] = {}
    file_keys: set[str] = set()
    dir_keys: set[str] = set()
    for path in sorted(files):
        key = unicodedata.normalize("NFC", path).casefold()
        parts = key.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if key in file_keys or key in dir_keys or prefixes & file_keys:
            continue
        file_keys.add(key)
        dir_keys |= prefixes
        out[path] = files[path]
    return out


trees = st.dictionaries(content_path, st.binary(max_size=300), max_size=12).map(tidy)


@settings(PROPERTY, max_examples=40)
@given(files=trees, data=st.data())
def test_round_trip(files: dict[str, bytes], data: st.DataObject) -> None:
    files = {"app.toml": APP_TOML, **files}
    executable = {p for p in files if data.draw(st.booleans(), label=f"exec {p}")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = write_tree(tmp / "app", files, executable=executable)
        built = build_package(src, tmp / "p.apppkg")
        assert [f.path for f in built.files] == sorted(files)
        assert {f.path for f in built.files if f.executable} == executable
        assert read_package(tmp / "p.apppkg") == built
        extracted = extract_package(tmp / "p.apppkg", tmp / "out")
        assert extracted == built
        assert list_tree(tmp / "out") == files
        for path in files:
            mode = (tmp / "out" / path).stat().st_mode & 0o777
            assert mode == (0o755 if path in executable else 0o644)


@settings(PROPERTY, max_examples=25)
@given(files=trees, seed=st.integers(0, 2**32 - 1))
def test_build_is_deterministic_whatever_the_creation_order(
    files: dict[str, bytes], seed: int
) -> None:
    files = {"app.toml": APP_TOML, **files}
    shuffled = list(files.items())
    random.Random(seed).shuffle(shuffled)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        build_package(write_tree(tmp / "a", files), tmp / "a.apppkg")
        b = write_tree(tmp / "b", dict(shuffled))
        for i, path in enumerate(sorted(files)):
            os.utime(b / path, (i * 1000, i * 1000))
        build_package(b, tmp / "b.apppkg")
        build_package(b, tmp / "c.apppkg")
        a_bytes = (tmp / "a.apppkg").read_bytes()
        assert a_bytes == (tmp / "b.apppkg").read_bytes() == (tmp / "c.apppkg").read_bytes()


# --- hostile raw archives ------------------------------------------------------------

_TOKEN = f"{os.getpid()}-{random.randrange(10**9)}"
_ABS_ESCAPE = f"/tmp/apprt-escape-{_TOKEN}"

weird_component = st.one_of(
    st.sampled_from(
        [
            *["..", ".", "", "backend", "frontend", "wheels", "app.toml", "MANIFEST"],
            *["SIGNATURE", "a", "A", "x.py", "X.PY", ".env", "__pycache__", "m.pyc", "C:", "~"],
            "a\\..\\..",
        ]
    ),
    st.text(max_size=6),
    st.binary(min_size=1, max_size=4).map(os.fsdecode),
)
weird_name = st.one_of(
    st.lists(weird_component, min_size=1, max_size=4).map("/".join),
    st.lists(weird_component, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
    st.sampled_from(
        ["../../escape", "backend/../../escape", _ABS_ESCAPE, "backend/x/../../../escape"]
    ),
    content_path,
)
member_type = st.sampled_from(
    [tarfile.REGTYPE] * 4
    + [tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]
    + [tarfile.CHRTYPE, tarfile.CONTTYPE, b"Z"]
)
raw_member = st.builds(
    M,
    name=weird_name,
    data=st.binary(max_size=64),
    type=member_type,
    linkname=st.one_of(weird_name, st.just("../../escape"), st.just("/etc/passwd")),
    mode=st.sampled_from([0o644, 0o755, 0o4755, 0o777]),
)


def _manifest_for(members: list[M]) -> bytes:
    files = {
        m.name: m.data
        for m in members
        if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and m.name not in ("MANIFEST", "SIGNATURE")
    }
    try:
        return manifest_of(files)
    except UnicodeEncodeError:
        return b"".join(
            line.encode("utf-8", "surrogateescape")
            for line in manifest_of({k: v for k, v in files.items() if k.isprintable()})
            .decode()
            .splitlines(keepends=True)
        )


@st.composite
def hostile_archives(draw: st.DrawFn) -> bytes:
    """Mostly well-formed packages with a few hostile members mixed in (sometimes
    none, so that extraction also succeeds), MANIFEST right, missing or garbage."""
    good = draw(trees)
    members = [M(path, data) for path, data in good.items()]
    if draw(st.integers(0, 3)):
        members.insert(0, M("app.toml", APP_TOML))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 4]))):
        members.insert(draw(st.integers(0, len(members))), draw(raw_member))
    mode = draw(st.sampled_from(["manifest"] * 4 + ["none", "garbage"]))
    if mode == "manifest":
        manifest = _manifest_for(members)
        if draw(st.booleans()):
            members.sort(key=lambda m: m.name)
        members.insert(0, M("MANIFEST", manifest))
    elif mode == "garbage":
        members.insert(0, M("MANIFEST", draw(st.binary(max_size=200))))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]))
    try:
        raw = tar_bytes(members, fmt=fmt)
    except (ValueError, UnicodeError):
        assume(False)  # tarfile cannot even write it
        raise
    if draw(st.booleans()):
        raw = raw.rstrip(b"\0")  # drop the end-of-archive blocks
    return gz(raw)


def _check_contained(dest: Path, info: PackageInfo) -> None:
    real = dest.resolve()
    seen = set()
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            assert not path.is_symlink(), path
            assert path.resolve().is_relative_to(real), path
        for name in filenames:
            path = Path(dirpath) / name
            assert path.is_file()
            seen.add(path.relative_to(dest).as_posix())
    assert seen == {f.path for f in info.files}


@settings(PROPERTY, max_examples=400)
@given(archive=hostile_archives())
def test_hostile_archives_are_extracted_inside_dest_or_refused(archive: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sandbox = tmp / "a" / "b"
        (sandbox / "sentinel").mkdir(parents=True)
        dest = sandbox / "dest"
        try:
            info = extract_package(io.BytesIO(archive), dest)
        except PackageError as exc:
            event(f"refused: {exc.problems[0].reason[:40]}")
            str(exc).encode("utf-8")  # the message is printable
            assert sorted(os.listdir(sandbox)) == ["sentinel"]  # no leftover temp dir
        else:
            event("extracted")
            assert sorted(os.listdir(sandbox)) == ["dest", "sentinel"]
            _check_contained(dest, info)
        assert os.listdir(sandbox / "sentinel") == []
        assert os.listdir(tmp) == ["a"] and os.listdir(tmp / "a") == ["b"]
        assert not os.path.lexists(_ABS_ESCAPE)


# --- corrupted bytes ------------------------------------------------------------------


def _sample_package_files() -> dict[str, bytes]:
    return sample_files() | {"frontend/data.bin": bytes(range(256)) * 4}


@functools.cache
def _valid_package() -> tuple[bytes, PackageInfo]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        build_package(write_tree(tmp / "app", _sample_package_files()), tmp / "p.apppkg")
        info = sign_package(tmp / "p.apppkg", Ed25519PrivateKey.generate())
        return (tmp / "p.apppkg").read_bytes(), info


def _same_content(info: PackageInfo, expected: PackageInfo) -> None:
    assert [(f.path, f.size, f.sha256) for f in info.files] == [
        (f.path, f.size, f.sha256) for f in expected.files
    ]
    assert info.manifest_digest == expected.manifest_digest
    assert info.signatures == expected.signatures
    assert info.manifest_text == expected.manifest_text


def _flip(data: bytes, draw: st.DataObject) -> bytes:
    corrupted = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3), label="flips")):
        index = draw.draw(st.integers(0, 2**31), label="index") % len(corrupted)
        corrupted[index] ^= draw.draw(st.integers(1, 255), label="xor")
    return bytes(corrupted)


@settings(PROPERTY, max_examples=400)
@given(data=st.data())
def test_byte_flips_are_detected_or_harmless(data: st.DataObject) -> None:
    original, expected = _valid_package()
    try:
        info = read_package(io.BytesIO(_flip(original, data)))
    except PackageError as exc:
        event(f"refused: {exc.problems[0].reason[:30]}")
        return
    event("harmless")
    # Only bytes no checksum covers can change without detection: the gzip header's
    # mtime / extra-flags / OS fields and unused padding bits of the last deflate byte.
    # The verified content must then be exactly the original.
    _same_content(info, expected)
    assert info.files == expected.files


@functools.cache
def _valid_tar() -> tuple[bytes, PackageInfo]:
    files = _sample_package_files()
    raw = tar_bytes(
        [M("MANIFEST", manifest_of(files))] + [M(p, d) for p, d in sorted(files.items())]
    )
    return raw, read_package(io.BytesIO(gz(raw)))


@settings(PROPERTY, max_examples=600)
@given(data=st.data())
def test_tar_level_flips_are_detected_or_harmless(data: st.DataObject) -> None:
    """Flip bytes of the tar stream *before* compression, so the gzip CRC is right and
    the corruption reaches the tar parser, the MANIFEST and the digests."""
    original, expected = _valid_tar()
    with tempfile.TemporaryDirectory() as tmp_name:
        dest = Path(tmp_name) / "dest"
        try:
            info = extract_package(io.BytesIO(gz(_flip(original, data))), dest)
        except PackageError as exc:
            event(f"refused: {exc.problems[0].reason[:30]}")
            assert os.listdir(tmp_name) == []
            return
        event("harmless")
        # Header fields apprt ignores (mtime, owner, most mode bits, padding) may change.
        _same_content(info, expected)
        assert list_tree(dest) == _sample_package_files()


@settings(PROPERTY, max_examples=100)
@given(cut=st.integers(0, 10**6))
def test_every_truncation_is_refused(cut: int) -> None:
    original, _ = _valid_package()
    cut %= len(original)
    try:
        read_package(io.BytesIO(original[:cut]))
    except PackageError:
        return
    raise AssertionError(f"a package cut at {cut} of {len(original)} bytes was accepted")


@settings(PROPERTY, max_examples=150)
@given(garbage=st.binary(max_size=2000))
def test_random_bytes_are_refused(garbage: bytes) -> None:
    for data in (garbage, b"\x1f\x8b\x08" + garbage, gz(garbage)):
        try:
            read_package(io.BytesIO(data))
        except PackageError:
            continue
        raise AssertionError(data)


def test_reference_helpers_agree_with_builder(tmp_path: Path) -> None:
    """The crafted archives of these tests and the builder describe files alike."""
    files = sample_files()
    built = build_package(write_tree(tmp_path / "app", files), tmp_path / "p.apppkg")
    crafted = read_package(
        io.BytesIO(
            gz(
                tar_bytes(
                    [M("MANIFEST", manifest_of(files))]
                    + [M(p, d) for p, d in sorted(files.items())]
                )
            )
        )
    )
    assert crafted.files == built.files
    assert crafted.manifest_digest == built.manifest_digest
