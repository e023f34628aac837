"""extract_package: all or nothing, never outside dest."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from apprt.errors import PackageError
from apprt.package import build_package, extract_package, read_package

from ._helpers import (
    APP_TOML,
    M,
    gz,
    list_tree,
    package_members,
    sample_files,
    tar_bytes,
    write_tree,
)


def test_extract_round_trip(tmp_path: Path) -> None:
    files = sample_files()
    src = write_tree(tmp_path / "app", files, executable=["backend/main.py"])
    pkg = tmp_path / "app.apppkg"
    built = build_package(src, pkg)
    dest = tmp_path / "installed" / "hello" / "1.0.0"
    info = extract_package(pkg, dest)
    assert info == built
    assert list_tree(dest) == files
    assert stat.S_IMODE((dest / "backend" / "main.py").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "app.toml").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "backend").stat().st_mode) == 0o755
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert os.listdir(dest.parent) == ["1.0.0"]


def test_extract_from_file_object(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "app", sample_files())
    pkg = tmp_path / "app.apppkg"
    build_package(src, pkg)
    with pkg.open("rb") as f:
        extract_package(f, tmp_path / "out")
    assert list_tree(tmp_path / "out") == sample_files()


def test_extract_refuses_existing_dest(tmp_path: Path) -> None:
    data = gz(tar_bytes(package_members({"app.toml": APP_TOML})))
    (tmp_path / "dest").mkdir()
    with pytest.raises(PackageError, match="already exists"):
        extract_package(io.BytesIO(data), tmp_path / "dest")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(PackageError, match="already exists"):
        extract_package(io.BytesIO(data), tmp_path / "link")
    assert sorted(os.listdir(tmp_path)) == ["dest", "link"]
    assert os.listdir(tmp_path / "dest") == []


@pytest.mark.parametrize(
    "bad",
    [
        M("../escape.py", b"x"),
        M("/tmp/apprt-escape-abs.py", b"x"),
        M("backend/evil", type=tarfile.SYMTYPE, linkname="../../sentinel"),
        M("backend/hard", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
    ],
)
def test_failed_extract_leaves_nothing(tmp_path: Path, bad: M) -> None:
    files = {"app.toml": APP_TOML, "backend/a.py": b"1", "frontend/z.js": b"2"}
    members = package_members(files)
    members.insert(3, bad)  # after some files were already written
    sandbox = tmp_path / "sandbox"
    (sandbox / "sentinel").mkdir(parents=True)
    with pytest.raises(PackageError):
        extract_package(io.BytesIO(gz(tar_bytes(members))), sandbox / "dest")
    assert sorted(os.listdir(sandbox)) == ["sentinel"]
    assert os.listdir(sandbox / "sentinel") == []
    assert not Path("/tmp/apprt-escape-abs.py").exists()


def test_failed_digest_after_writing_leaves_nothing(tmp_path: Path) -> None:
    files = {"app.toml": APP_TOML, "backend/a.py": b"print(1)\n", "frontend/z.js": b"2"}
    members = package_members(files)
    members[-1] = M("frontend/z.js", b"3")  # last file, same size, other content
    with pytest.raises(PackageError, match="does not match its sha256"):
        extract_package(io.BytesIO(gz(tar_bytes(members))), tmp_path / "dest")
    assert os.listdir(tmp_path) == []


def test_trailing_garbage_detected_after_all_files_written(tmp_path: Path) -> None:
    data = gz(tar_bytes(package_members(sample_files()))) + b"garbage"
    with pytest.raises(PackageError, match="gzip stream"):
        extract_package(io.BytesIO(data), tmp_path / "dest")
    assert os.listdir(tmp_path) == []


def test_extract_then_read_agree(tmp_path: Path) -> None:
    data = gz(tar_bytes(package_members(sample_files())))
    assert extract_package(io.BytesIO(data), tmp_path / "d") == read_package(io.BytesIO(data))
