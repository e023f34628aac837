"""cgroups (fingerprint, limits, stats, rename, kill) and the data volumes (quota)."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprt.runtime import cgroups as cg
from apprt.runtime.drivers import _volume

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_detect_explains_an_unusable_delegation(tmp_path: Path) -> None:
    support = cg.detect(root=tmp_path / "nope")
    assert support.version == "none" and not support.usable
    assert "APPRT_CGROUP_ROOT" in support.detail


@needs_root
def test_cgroup_limits_stats_rename_and_kill() -> None:
    support = cg.detect()
    assert support.usable, support.detail
    parent = f"apprt-test-{os.getpid()}"
    group = cg.Cgroup.create(support, parent, "one", memory_mb=64, cpu=0.5, pids=8)
    proc = subprocess.Popen(["sleep", "30"])
    try:
        group.add(proc.pid)
        assert group.procs() == [proc.pid]
        group.set_limits(memory_mb=256, cpu=1.0, pids=16)  # raising works (v1: memsw first)
        group.set_limits(memory_mb=32, cpu=0.25, pids=4)  # and lowering
        stats = group.stats()
        assert stats.pids == 1 and stats.memory_limit_bytes == 32 << 20
        group.rename("two")
        assert all(p.name == "two" and p.is_dir() for p in group.paths.values())
        assert group.procs() == [proc.pid]
        assert cg.Cgroup.from_state(group.to_state()).procs() == [proc.pid]
        group.remove()
        assert proc.wait(5) == -9
        assert not group.exists()
    finally:
        proc.kill()
        proc.wait()
        group.remove()
        cg.remove_parent(support, parent)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="apprt-vol-", dir="/tmp"))
    data = root / "data"
    try:
        yield data
    finally:
        _volume.unmount(data)
        subprocess.run(["rm", "-rf", str(root)], check=False)


@needs_root
def test_volume_enforces_the_quota_and_keeps_data(data_dir: Path) -> None:
    if not _volume.available()[0]:
        pytest.skip(_volume.available()[1])
    data_dir.mkdir(parents=True)
    (data_dir / "before.txt").write_text("migrated")
    _volume.ensure_mounted(data_dir, 8, 4242, 4242)
    assert _volume.is_mounted(data_dir)
    assert (data_dir / "before.txt").read_text() == "migrated"
    assert data_dir.stat().st_uid == 4242 and (data_dir / "before.txt").stat().st_uid == 4242
    with pytest.raises(OSError) as info, (data_dir / "big").open("wb") as f:
        for _ in range(16):
            f.write(b"x" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
    assert info.value.errno == errno.ENOSPC
    (data_dir / "big").unlink()
    _volume.unmount(data_dir)
    assert not _volume.is_mounted(data_dir) and not any(data_dir.iterdir())
    _volume.ensure_mounted(data_dir, 16, 4242, 4242)  # remount, grown online
    assert (data_dir / "before.txt").read_text() == "migrated"
    st = os.statvfs(data_dir)
    assert st.f_blocks * st.f_frsize > 12 << 20
    used = _volume.usage_bytes(data_dir)
    assert used is not None and used < 16 << 20


def test_v2_layout_on_a_fake_delegated_tree(tmp_path: Path) -> None:
    """The v2 code paths (this host has only v1 controllers), on plain files."""
    root = tmp_path / "delegated"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    support = cg.detect(root=root)
    assert support.version == "v2" and support.bases == {"unified": root}
    group = cg.Cgroup.create(support, "apprt", "inst", memory_mb=128, cpu=0.5, pids=32)
    path = root / "apprt" / "inst"
    assert group.paths == {"unified": path}
    assert (root / "apprt" / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (path / "memory.max").read_text() == str(128 << 20)
    assert (path / "cpu.max").read_text() == "50000 100000"
    assert (path / "pids.max").read_text() == "32"
    (path / "memory.current").write_text("4096\n")
    (path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 1\n")
    (path / "pids.current").write_text("3\n")
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    (path / "pids.events").write_text("max 5\n")
    stats = group.stats()
    assert stats == cg.CgroupStats(4096, 128 << 20, 2.5, 3)
    assert group.oom_kills() == 1 and group.pids_limited() == 5
    group.rename("renamed")
    assert group.paths == {"unified": root / "apprt" / "renamed"}
    assert cg.Cgroup.at(support, "apprt", "renamed").paths == group.paths
