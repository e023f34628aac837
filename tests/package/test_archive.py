"""build_package and read_package: the format, determinism, and every rejection."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from apprt.errors import PackageError
from apprt.package import DEFAULT_LIMITS, PackageLimits, build_package, read_package

from ._helpers import (
    APP_TOML,
    M,
    gz,
    manifest_of,
    package_bytes,
    package_members,
    sample_files,
    tar_bytes,
    write_tree,
)


def read_bytes(data: bytes, limits: PackageLimits = DEFAULT_LIMITS):
    return read_package(io.BytesIO(data), limits=limits)


def rejected(data: bytes, *needles: str, limits: PackageLimits = DEFAULT_LIMITS) -> PackageError:
    with pytest.raises(PackageError) as excinfo:
        read_bytes(data, limits)
    text = str(excinfo.value)
    for needle in needles:
        assert needle in text, text
    for problem in excinfo.value.problems:
        assert problem.reason and problem.hint, problem
    return excinfo.value


# --- building ---------------------------------------------------------------------


def test_build_layout_and_members(tmp_path: Path) -> None:
    files = sample_files() | {
        "LICENSE.txt": b"MIT",
        "icon.png": b"\x89PNG",
        "tests/test_x.py": b"skip me",
        "pyproject.toml": b"skip me",
        ".git/config": b"skip me",
        ".env": b"SECRET=1",
        "backend/.env": b"SECRET=1",
        "backend/__pycache__/main.cpython-311.pyc": b"\0",
        "backend/stale.pyc": b"\0",
        "frontend/node_modules/x/index.js": b"skip",
        "frontend/.cache/x": b"skip",
    }
    src = write_tree(tmp_path / "app", files, executable=["backend/main.py"])
    out = tmp_path / "dist" / "app.apppkg"
    info = build_package(src, out)

    with tarfile.open(out, "r:gz") as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == [
        "MANIFEST",
        "LICENSE.txt",
        "README.md",
        "app.toml",
        "backend/lib/util.py",
        "backend/main.py",
        "frontend/assets/logo.svg",
        "frontend/index.js",
        "icon.png",
    ]
    for m in members:
        assert m.isreg() and m.mtime == 0 and m.uid == m.gid == 0
        assert m.uname == m.gname == ""
        assert m.mode == (0o755 if m.name == "backend/main.py" else 0o644)
    assert [f.path for f in info.files] == names[1:]
    assert info.file("backend/main.py").executable
    assert not info.file("app.toml").executable
    assert info.manifest_text == APP_TOML.decode()
    assert info.signatures == ()
    raw = out.read_bytes()
    assert info.archive_size == len(raw)
    assert info.archive_sha256 == hashlib.sha256(raw).hexdigest()
    # gzip header: no file name, mtime 0
    assert raw[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    with tarfile.open(out, "r:gz") as tf:
        manifest = tf.extractfile("MANIFEST").read()
    assert hashlib.sha256(manifest).hexdigest() == info.manifest_digest
    expected_files = {k: v for k, v in files.items() if k in names}
    assert manifest == manifest_of(expected_files)
    assert read_package(out) == info
    assert not [p for p in out.parent.iterdir() if p.name != "app.apppkg"]  # no temp files


def test_build_is_deterministic(tmp_path: Path) -> None:
    files = sample_files()
    a = write_tree(tmp_path / "a", files)
    b = write_tree(tmp_path / "b", dict(reversed(list(files.items()))))
    os.utime(b / "app.toml", (1_000_000, 1_000_000))
    (b / "frontend" / "index.js").chmod(0o600)
    build_package(a, tmp_path / "a.apppkg")
    build_package(b, tmp_path / "b.apppkg")
    build_package(a, tmp_path / "a2.apppkg")
    data = (tmp_path / "a.apppkg").read_bytes()
    assert data == (tmp_path / "b.apppkg").read_bytes() == (tmp_path / "a2.apppkg").read_bytes()


def test_build_includes_wheels_dir(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files() | {"wheels/a-1.0-py3-none-any.whl": b"A"})
    wheels = write_tree(tmp_path / "w", {"b-2.0-py3-none-any.whl": b"B", "notes.txt": b"ignored"})
    info = build_package(src, tmp_path / "p.apppkg", wheels_dir=wheels)
    assert [f.path for f in info.files if f.path.startswith("wheels/")] == [
        "wheels/a-1.0-py3-none-any.whl",
        "wheels/b-2.0-py3-none-any.whl",
    ]


def test_build_refuses_duplicate_wheel(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files() | {"wheels/a-1.0-py3-none-any.whl": b"A"})
    wheels = write_tree(tmp_path / "w", {"a-1.0-py3-none-any.whl": b"A"})
    with pytest.raises(PackageError, match="keep one copy"):
        build_package(src, tmp_path / "p.apppkg", wheels_dir=wheels)


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"wheels/notes.txt": b"x"}, "may only hold .whl"),
        ({"wheels/bad.whl": b"x"}, "not a valid wheel file name"),
        ({"backend/A.py": b"1", "backend/a.py": b"2"}, "case-insensitive"),
        ({"backend/x\\y.py": b"1"}, "backslash"),
        ({"backend/x\ny.py": b"1"}, "control"),
        ({"backend/" + "d/" * 40 + "x.py": b"1"}, "levels deep"),
    ],
)
def test_build_refuses_bad_sources(tmp_path: Path, files: dict[str, bytes], needle: str) -> None:
    src = write_tree(tmp_path / "app", sample_files() | files)
    out = tmp_path / "p.apppkg"
    with pytest.raises(PackageError, match=needle):
        build_package(src, out)
    assert list(tmp_path.iterdir()) == [src]  # nothing written, not even a temp file


def test_build_refuses_non_utf8_name(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files())
    (src / "backend").joinpath(os.fsdecode(b"bad\xff.py")).write_bytes(b"x")
    with pytest.raises(PackageError, match="UTF-8") as excinfo:
        build_package(src, tmp_path / "p.apppkg")
    assert "\\xff" in str(excinfo.value)  # printable


def test_build_refuses_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    src = write_tree(tmp_path / "app", sample_files())
    (src / "backend" / "link.py").symlink_to(outside)
    (src / "frontend" / "dirlink").symlink_to(tmp_path)
    with pytest.raises(PackageError) as excinfo:
        build_package(src, tmp_path / "p.apppkg")
    reasons = [p.reason for p in excinfo.value.problems]
    assert len(reasons) == 2 and all("symbolic link" in r for r in reasons)
    assert "link.py" in str(excinfo.value) and "dirlink" in str(excinfo.value)


def test_build_ignores_symlinks_in_excluded_places(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files())
    (src / ".venv").mkdir()
    (src / ".venv" / "python").symlink_to("/usr/bin/python3")
    (src / "node_modules").symlink_to(tmp_path)
    build_package(src, tmp_path / "p.apppkg")


def test_build_refuses_symlinked_top_dir_and_fifo(tmp_path: Path) -> None:
    real = write_tree(tmp_path / "real", {"x.py": b"1"})
    src = write_tree(tmp_path / "app", {"app.toml": APP_TOML})
    (src / "backend").symlink_to(real)
    os.mkfifo(src / "README.md")
    with pytest.raises(PackageError) as excinfo:
        build_package(src, tmp_path / "p.apppkg")
    text = str(excinfo.value)
    assert "symbolic link" in text and "FIFO" in text


def test_build_requires_app_toml(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", {"backend/main.py": b"x"})
    with pytest.raises(PackageError, match=r"no app\.toml"):
        build_package(src, tmp_path / "p.apppkg")


def test_build_missing_source_dir(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="cannot open the app directory"):
        build_package(tmp_path / "nope", tmp_path / "p.apppkg")


def test_build_enforces_limits(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files() | {"backend/big.bin": b"x" * 5000})
    with pytest.raises(PackageError, match="more than the limit of 4096"):
        build_package(src, tmp_path / "p.apppkg", limits=PackageLimits(max_member_size=4096))
    with pytest.raises(PackageError, match="add up to"):
        build_package(src, tmp_path / "p.apppkg", limits=PackageLimits(max_total_size=5000))
    with pytest.raises(PackageError, match="more than the limit of 3"):
        build_package(src, tmp_path / "p.apppkg", limits=PackageLimits(max_members=4))
    assert list(tmp_path.iterdir()) == [src]


def test_build_refuses_bomb_and_leaves_nothing(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files() | {"frontend/zeros.bin": bytes(4 << 20)})
    out = tmp_path / "p.apppkg"
    out.write_bytes(b"previous")
    with pytest.raises(PackageError, match="compression bomb"):
        build_package(src, out)
    assert out.read_bytes() == b"previous"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "p.apppkg"]


# --- reading: well-formed ---------------------------------------------------------


def test_read_crafted_package_and_fileobj() -> None:
    files = {"app.toml": APP_TOML, "backend/ü.py": "π = 3\n".encode()}
    info = read_bytes(package_bytes(files))
    assert [(f.path, f.size) for f in info.files] == [(p, len(d)) for p, d in files.items()]
    assert info.file("backend/ü.py").sha256 == hashlib.sha256(files["backend/ü.py"]).hexdigest()
    assert info.to_dict()["files"][0]["path"] == "app.toml"


def test_read_accepts_gnu_and_ustar_formats() -> None:
    members = package_members({"app.toml": APP_TOML, "frontend/x.js": b"1"})
    for fmt in (tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        read_bytes(gz(tar_bytes(members, fmt=fmt)))


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="cannot open the package"):
        read_package(tmp_path / "nope.apppkg")


# --- reading: container-level rejections -------------------------------------------


def test_reject_not_gzip() -> None:
    rejected(b"hello world", "not a gzip")
    rejected(b"", "empty")
    rejected(tar_bytes(package_members({"app.toml": APP_TOML})), "not a gzip")


def test_reject_gzip_but_not_tar() -> None:
    rejected(gz(b"just some text, definitely not a tar header" * 20), "not a tar archive")


def test_reject_truncated() -> None:
    data = package_bytes()
    for cut in (20, len(data) // 2, len(data) - 4, len(data) - 1):
        rejected(data[:cut])


def test_reject_trailing_bytes_and_concatenated_gzip() -> None:
    data = package_bytes()
    rejected(data + b"x", "follows the end of the gzip stream")
    rejected(data + data, "follows the end of the gzip stream")


def test_reject_data_hidden_after_tar_end() -> None:
    raw = tar_bytes(package_members({"app.toml": APP_TOML}))
    hidden = tar_bytes([M("backend/evil.py", b"evil")])
    rejected(gz(raw + hidden), "follows the end of the tar archive")


def test_reject_corrupt_header_mid_archive() -> None:
    raw = bytearray(tar_bytes(package_members({"app.toml": APP_TOML, "frontend/a.js": b"1"})))
    # Corrupt the checksum of the third header (app.toml header at 1024? find it).
    index = raw.rindex(b"frontend/a.js")  # the header, not the MANIFEST line
    raw[index + 148 : index + 156] = b"0000000\0"  # wrong checksum
    rejected(gz(bytes(raw)))


def test_reject_crc_mismatch() -> None:
    data = bytearray(package_bytes())
    data[-8] ^= 0xFF  # gzip CRC32 trailer
    rejected(bytes(data), "corrupt gzip data")


# --- reading: member names -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("backend/../../etc/passwd", "`..`"),
        ("../outside.py", "`..`"),
        ("/etc/passwd", "absolute"),
        ("backend\\evil.py", "backslash"),
        ("backend//x.py", "empty component"),
        ("./backend/x.py", "`.` component"),
        ("backend/./x.py", "`.` component"),
        ("backend/x\x00y.py", "U+0000"),
        ("backend/x\ny.py", "U+000A"),
        ("backend/x\x1b[31m.py", "U+001B"),
        ("backend/\u202eyp.exe", "U+202E"),
        (os.fsdecode(b"backend/\xff\xfe.py"), "not valid UTF-8"),
        ("backend/" + "x" * 260, "bytes long"),
        ("backend/" + "d/" * 40 + "x", "levels deep"),
    ],
)
def test_reject_bad_member_names(name: str, needle: str) -> None:
    files = {"app.toml": APP_TOML}
    members = [*package_members(files), M(name, b"x", pax={"path": name})]
    err = rejected(gz(tar_bytes(members)), needle)
    assert "\x00" not in str(err) and "\x1b" not in str(err)
    str(err).encode("utf-8")  # printable even for undecodable names


def test_reject_bad_name_in_manifest() -> None:
    manifest = manifest_of({"app.toml": APP_TOML}) + manifest_of({"../x.py": b"1"})
    data = gz(tar_bytes([M("MANIFEST", manifest), M("app.toml", APP_TOML)]))
    rejected(data, "MANIFEST:line 2", "`..`")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("setup.py", "not allowed at the top"),
        ("tests/test_x.py", "not allowed at the top"),
        ("backend/.env", "hidden"),
        ("backend/__pycache__/m.cpython-311.pyc", "__pycache__"),
        ("backend/m.pyc", "bytecode"),
        ("frontend/node_modules/x.js", "node_modules"),
        ("wheels/sub/x.whl", "wheels/"),
        ("wheels/readme.txt", "wheels/"),
        ("MANIFEST.bak", "not allowed at the top"),
    ],
)
def test_reject_layout(name: str, needle: str) -> None:
    files = {"app.toml": APP_TOML, name: b"x"}
    rejected(package_bytes(files), needle)


# --- reading: member types ------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        (M("backend/link.py", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "symbolic link"),
        (M("backend/hard.py", type=tarfile.LNKTYPE, linkname="app.toml"), "hard link"),
        (M("backend", type=tarfile.DIRTYPE, mode=0o755), "a directory"),
        (M("backend/fifo", type=tarfile.FIFOTYPE), "FIFO"),
        (M("backend/dev", type=tarfile.CHRTYPE), "character device"),
        (M("backend/blk", type=tarfile.BLKTYPE), "block device"),
        (M("backend/cont", b"x", type=tarfile.CONTTYPE), "contiguous"),
        (M("backend/odd", b"", type=b"Z"), "unknown tar type"),
    ],
)
def test_reject_non_regular_members(member: M, needle: str) -> None:
    members = [*package_members({"app.toml": APP_TOML}), member]
    rejected(gz(tar_bytes(members)), needle, "only regular files")


def test_reject_sparse_member() -> None:
    raw = bytearray(tar_bytes([*package_members({"app.toml": APP_TOML}), M("backend/s", b"")]))
    index = raw.index(b"backend/s")
    raw[index + 156 : index + 157] = tarfile.GNUTYPE_SPARSE
    raw[index + 257 : index + 265] = tarfile.GNU_MAGIC
    checksum = sum(raw[index : index + 148]) + 8 * 32 + sum(raw[index + 156 : index + 512])
    raw[index + 148 : index + 156] = b"%06o\0 " % checksum
    rejected(gz(bytes(raw)), "sparse")


def test_reject_oversized_and_chained_extended_headers() -> None:
    big = M("backend/x.py", b"1", pax={"comment": "x" * 100_000})
    rejected(gz(tar_bytes([*package_members({"app.toml": APP_TOML}), big])), "extended tar header")
    header = tarfile.TarInfo._create_pax_generic_header({"comment": "x"}, tarfile.XHDTYPE, "utf-8")
    chain = header * 5000 + tar_bytes([M("backend/x.py", b"1")])
    raw = tar_bytes(package_members({"app.toml": APP_TOML}), end=False) + chain
    rejected(gz(raw), "chained extended tar headers")


# --- reading: duplicates and collisions ------------------------------------------------


def test_reject_duplicate_member() -> None:
    files = {"app.toml": APP_TOML, "backend/a.py": b"1"}
    members = [*package_members(files), M("backend/a.py", b"1")]
    rejected(gz(tar_bytes(members)), "appears twice")


def test_reject_case_and_normalisation_collisions() -> None:
    rejected(
        package_bytes({"app.toml": APP_TOML, "backend/A.py": b"1", "backend/a.py": b"2"}),
        "case-insensitive",
    )
    rejected(
        package_bytes(
            {"app.toml": APP_TOML, "backend/\u00e9.py": b"1", "backend/e\u0301.py": b"2"}
        ),
        "case-insensitive",
    )


def test_reject_file_directory_conflict() -> None:
    rejected(
        package_bytes({"app.toml": APP_TOML, "backend/a": b"1", "backend/a/b.py": b"2"}),
        "also a file",
    )
    members = package_members({"app.toml": APP_TOML, "backend/a/b.py": b"2", "backend/a": b"1"})
    members[2], members[3] = members[3], members[2]  # directory first, then the file
    rejected(gz(tar_bytes(members)), "also used as a directory")


# --- reading: limits ------------------------------------------------------------------


def test_reject_member_over_size_limit() -> None:
    data = package_bytes({"app.toml": APP_TOML, "backend/big.bin": b"x" * 2000})
    rejected(data, "more than the limit of 1000", limits=PackageLimits(max_member_size=1000))


def test_reject_member_claiming_huge_size_before_reading() -> None:
    members = [*package_members({"app.toml": APP_TOML}), M("backend/x", b"", size=10**12)]
    rejected(gz(tar_bytes(members)), "more than the limit")


def test_reject_total_over_limit() -> None:
    files = {"app.toml": APP_TOML} | {f"backend/{i}.bin": b"x" * 500 for i in range(5)}
    rejected(package_bytes(files), "add up to", limits=PackageLimits(max_total_size=2000))


def test_reject_too_many_members() -> None:
    files = {"app.toml": APP_TOML} | {f"backend/{i}.py": b"" for i in range(20)}
    rejected(package_bytes(files), "lists 21 files", limits=PackageLimits(max_members=10))
    # Members beyond the MANIFEST (here, repeated) are stopped by counting.
    files = {"app.toml": APP_TOML} | {f"backend/{i}.py": b"" for i in range(8)}
    members = package_members(files)
    members += members[1:]
    rejected(gz(tar_bytes(members)), "more than 10 members", limits=PackageLimits(max_members=10))


class CountingReader(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._f.readinto(b)
        self.consumed += n
        return n


def bomb(claimed: int) -> bytes:
    """A gzip stream whose tar member claims ``claimed`` zero bytes; only the start of
    the (never reached) end is valid, but a reader must stop long before that."""
    manifest = manifest_of({"app.toml": APP_TOML}) + b"%s %d frontend/zeros.bin\n" % (
        b"0" * 64,
        claimed,
    )
    head = tar_bytes([M("MANIFEST", manifest), M("app.toml", APP_TOML)], end=False)
    head += tar_bytes([M("frontend/zeros.bin", size=claimed)], end=False)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    return out + block * (claimed >> 20) + comp.flush()


def test_compression_bomb_is_stopped_early() -> None:
    data = bomb(1 << 30)
    assert len(data) < (1 << 30) / 500
    reader = CountingReader(data)
    limits = PackageLimits(max_member_size=1 << 31, max_total_size=1 << 31)
    with pytest.raises(PackageError, match="compression bomb"):
        read_package(io.BufferedReader(reader), limits=limits)
    assert reader.consumed < len(data) / 10


def test_ratio_floor_lets_small_archives_through() -> None:
    # Under 1 MiB of very repetitive content: a ratio far above 100:1 is tolerated.
    files = {"app.toml": APP_TOML} | {f"backend/m{i}.bin": bytes(30_000) for i in range(30)}
    data = package_bytes(files)
    read_bytes(data)
    rejected(data, "compression bomb", limits=PackageLimits(ratio_floor=1024))


# --- reading: MANIFEST ----------------------------------------------------------------


def test_reject_manifest_missing_or_misplaced() -> None:
    rejected(gz(tar_bytes([M("app.toml", APP_TOML)])), "first member must be MANIFEST")
    members = package_members({"app.toml": APP_TOML})
    rejected(gz(tar_bytes(members[::-1])), "first member must be MANIFEST")
    rejected(gz(tar_bytes([*members, members[0]])), "MANIFEST appears twice")
    rejected(gz(b"\0" * 10240), "empty")


@pytest.mark.parametrize(
    ("manifest", "needle"),
    [
        (b"", "MANIFEST is empty"),
        (b"\xff\xfe", "not valid UTF-8"),
        (manifest_of({"app.toml": APP_TOML})[:-1], "newline"),
        (b"nonsense\n", "expected `<sha256 hex> <size> <path>`"),
        (b"%s 5 app.toml\n" % (b"A" * 64), "expected"),  # uppercase hex
        (b"%s 05 app.toml\n" % (b"a" * 64), "expected"),  # leading zero
        (b"%s 5  app.toml\n" % (b"a" * 64), "not allowed at the top"),  # path " app.toml"
        (manifest_of({"backend/a.py": b"1"}), "no app.toml"),
        (manifest_of({"app.toml": APP_TOML}) * 2, "twice"),
        (
            manifest_of({"backend/a.py": b"1"}) + manifest_of({"app.toml": APP_TOML}),
            "out of order",
        ),
        (manifest_of({"app.toml": APP_TOML}).replace(b"\n", b"\r\n"), "U+000D"),
    ],
)
def test_reject_malformed_manifest(manifest: bytes, needle: str) -> None:
    data = gz(tar_bytes([M("MANIFEST", manifest), M("app.toml", APP_TOML)]))
    rejected(data, needle)


def test_reject_manifest_over_metadata_limit() -> None:
    rejected(
        package_bytes(), "more than the limit of 10", limits=PackageLimits(max_metadata_size=10)
    )


def test_reject_file_not_in_manifest() -> None:
    members = [*package_members({"app.toml": APP_TOML}), M("backend/extra.py", b"1")]
    rejected(gz(tar_bytes(members)), "backend/extra.py", "not listed in MANIFEST")


def test_reject_listed_but_absent() -> None:
    files = {"app.toml": APP_TOML, "backend/a.py": b"1", "backend/b.py": b"2"}
    members = package_members(files)
    del members[2]
    err = rejected(gz(tar_bytes(members)), "backend/a.py", "missing from the archive")
    assert err.problems[0].file == "backend/a.py"


def test_reject_digest_and_size_mismatch() -> None:
    files = {"app.toml": APP_TOML, "backend/a.py": b"print(1)\n"}
    members = package_members(files)
    members[2] = M("backend/a.py", b"print(2)\n")
    rejected(gz(tar_bytes(members)), "backend/a.py", "does not match its sha256")
    members[2] = M("backend/a.py", b"print(10)\n")
    rejected(gz(tar_bytes(members)), "backend/a.py", "MANIFEST says 9")


def test_reject_app_toml_not_utf8() -> None:
    rejected(package_bytes({"app.toml": b"name = '\xff'\n"}), "app.toml is not valid UTF-8")


# --- reading: SIGNATURE ---------------------------------------------------------------

GOOD_SIG = {
    "algorithm": "ed25519",
    "key_id": "ab" * 32,
    "signature": base64.b64encode(b"\1" * 64).decode(),
}


def sig_doc(**overrides: object) -> bytes:
    return json.dumps({"version": 1, "signatures": [GOOD_SIG]} | overrides).encode()


@pytest.mark.parametrize(
    ("signature", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "exactly the keys"),
        (b'{"version": 1, "version": 1, "signatures": []}', "duplicate key"),
        (sig_doc(version=2), "unsupported SIGNATURE version"),
        (sig_doc(version=True), "unsupported SIGNATURE version"),
        (sig_doc(extra=1), "exactly the keys"),
        (sig_doc(signatures=[]), "non-empty list"),
        (sig_doc(signatures=[GOOD_SIG | {"algorithm": "rsa"}]), "unsupported algorithm"),
        (sig_doc(signatures=[GOOD_SIG | {"key_id": "AB" * 32}]), "64 lowercase hex"),
        (sig_doc(signatures=[GOOD_SIG | {"signature": "***"}]), "not base64"),
        (sig_doc(signatures=[GOOD_SIG | {"signature": 5}]), "not base64"),
        (sig_doc(signatures=[GOOD_SIG | {"signature": "AAAA"}]), "64 bytes"),
        (sig_doc(signatures=[GOOD_SIG, GOOD_SIG]), "signed twice"),
        (sig_doc(signatures=[{"key_id": "x"}]), '"algorithm"'),
    ],
)
def test_reject_malformed_signature(signature: bytes, needle: str) -> None:
    rejected(package_bytes(signature=signature), "SIGNATURE", needle)


def test_reject_misplaced_signature() -> None:
    members = package_members({"app.toml": APP_TOML, "backend/a.py": b"1"})
    members.append(M("SIGNATURE", sig_doc()))
    rejected(gz(tar_bytes(members)), "SIGNATURE must come right after MANIFEST")


def test_signature_is_parsed() -> None:
    info = read_bytes(package_bytes(signature=sig_doc()))
    assert [s.key_id for s in info.signatures] == ["ab" * 32]
    assert info.signatures[0].signature == b"\1" * 64
    assert info.is_signed


def test_long_and_unicode_paths_round_trip(tmp_path: Path) -> None:
    long_dir = "/".join(["sub" + "x" * 40] * 4)
    files = {
        "app.toml": APP_TOML,
        f"frontend/{long_dir}/file-{'é' * 20}.js": b"1",
        "backend/日本語/モジュール.py": b"2",
        "backend/with space/a b.py": b"3",
    }
    src = write_tree(tmp_path / "app", files)
    info = build_package(src, tmp_path / "p.apppkg")
    assert {f.path for f in info.files} == set(files)
    with tarfile.open(tmp_path / "p.apppkg", "r:gz") as tf:
        assert sorted(tf.getnames()[1:]) == sorted(files)


def test_licenses_directory_is_skipped_but_app_toml_directory_refused(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files() | {"LICENSES/MIT.txt": b"MIT"})
    info = build_package(src, tmp_path / "p.apppkg")
    assert not any(f.path.startswith("LICENSES") for f in info.files)
    src2 = write_tree(tmp_path / "app2", {"app.toml/x": b"", "backend/a.py": b""})
    with pytest.raises(PackageError, match="must be a file"):
        build_package(src2, tmp_path / "p2.apppkg")
