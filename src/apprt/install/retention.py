"""Retained data of uninstalled apps: export on uninstall, restore on reinstall.

An uninstall writes ``<data dir>/retained/<org>/<app id>/<UTC timestamp>.tar.gz``
(written beside, then renamed: never half there) holding:

``meta.json``   org, app id, version, when, what is inside
``data/``       the instance's data directory (isolated apps), as the app left it
``state.json``  the app's key-value state for the org, when the platform's state
                service offers ``export_state`` (see :func:`state_module`)

Archives older than the retention (``APPRT_INSTALL_RETENTION_DAYS``, 30) are pruned
when the platform starts and before every export. Installing the app again in the
same organization within the retention restores the newest archive: ``data/`` into
the new instance's data directory before its first start, ``state.json`` through
``import_state``.

With the bwrap driver the data directory is an ext4 image mounted on it while the
sandbox runs; after the app is stopped the image is mounted read-only on a temporary
directory to be archived (:func:`read_data_dir`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from apprt.errors import ApprtError, Problem

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^\d{8}T\d{6}\d{6}Z\.tar\.gz$")
IMAGE_SUFFIX = ".ext4"  # the bwrap driver's data volume beside the data directory


def app_dir(root: Path, org: str, app_id: str) -> Path:
    return root / org / app_id


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def _parse_stamp(name: str) -> datetime | None:
    if not _NAME.match(name):
        return None
    return datetime.strptime(name.removesuffix(".tar.gz"), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def archive_path(root: Path, org: str, app_id: str, when: datetime) -> Path:
    return app_dir(root, org, app_id) / f"{_stamp(when.astimezone(UTC))}.tar.gz"


def archives(root: Path, org: str, app_id: str) -> list[tuple[datetime, Path]]:
    """The retained archives of ``app_id`` in ``org``, newest first."""
    folder = app_dir(root, org, app_id)
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            when = _parse_stamp(path.name)
            if when is not None:
                found.append((when, path))
    return sorted(found, reverse=True)


def newest(root: Path, org: str, app_id: str, retention_days: float) -> Path | None:
    """The newest archive still within the retention, or None."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    for when, path in archives(root, org, app_id):
        if when >= cutoff:
            return path
    return None


def prune(root: Path, retention_days: float) -> list[Path]:
    """Delete archives older than the retention (and partial files of crashed exports)."""
    if not root.is_dir():
        return []
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    removed: list[Path] = []
    for org_dir in root.iterdir():
        if not org_dir.is_dir():
            continue
        for folder in org_dir.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                when = _parse_stamp(path.name)
                stale_tmp = path.name.startswith(".") and time.time() - path.stat().st_mtime > 3600
                if (when is not None and when < cutoff) or stale_tmp:
                    path.unlink(missing_ok=True)
                    removed.append(path)
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        with contextlib.suppress(OSError):
            org_dir.rmdir()
    if removed:
        log.info("install.retention_pruned", archives=[str(p) for p in removed])
    return removed


def state_module(session: Session) -> ModuleType | None:
    """``apprt.services.state`` when it offers ``export_state`` and ``import_state``
    and its tables exist in the database (the platform-services domain may be absent
    or not migrated yet on this platform)."""
    try:
        module = importlib.import_module("apprt.services.state")
    except ImportError:
        return None
    if not (hasattr(module, "export_state") and hasattr(module, "import_state")):
        return None
    tables = {
        str(getattr(model, "__tablename__", ""))
        for model in vars(module).values()
        if isinstance(model, type) and isinstance(getattr(model, "__tablename__", None), str)
    }
    inspector = inspect(session.connection())
    if not all(inspector.has_table(name) for name in tables):
        return None
    return module


# -- reading an instance's data -------------------------------------------------------


@contextlib.contextmanager
def read_data_dir(data_dir: Path) -> Iterator[Path | None]:
    """A directory showing the data of an instance whose sandbox is stopped.

    The directory itself when it holds the files (process driver, or the volume still
    mounted); the ext4 image mounted read-only on a temporary directory when the data
    lives in an unmounted image (bwrap driver); None when there is no data at all.
    """
    image = data_dir.with_name(data_dir.name + IMAGE_SUFFIX)
    if data_dir.is_dir() and (_is_mount(data_dir) or not image.exists()):
        yield data_dir
        return
    if not image.exists():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=".apprt-export-", dir=image.parent) as tmp:
        _run(["mount", "-o", "loop,ro,nosuid,nodev,noexec", str(image), tmp])
        try:
            yield Path(tmp)
        finally:
            _run(["umount", tmp])


def _is_mount(path: Path) -> bool:
    wanted = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if line.split(" - ")[0].split()[4] == wanted:
                return True
    return False


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise ApprtError(
            [
                Problem(
                    f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}",
                    location="data volume",
                    hint="check the image with e2fsck; the app's data is untouched",
                )
            ],
            title="cannot read the app's data",
        )


# -- export and restore ---------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def export(
    root: Path,
    *,
    org: str,
    app_id: str,
    version: str,
    data: Path | None,
    state: dict[str, Any] | None,
    when: datetime | None = None,
) -> Path:
    """Write the archive stamped ``when`` (default: now) atomically; its path.

    Idempotent: an archive with that stamp is complete (renamed into place whole),
    so it is returned as it is.
    """
    folder = app_dir(root, org, app_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = (when or datetime.now(UTC)).astimezone(UTC)
    target = archive_path(root, org, app_id, now)
    if target.exists():
        return target
    meta = {
        "org": org,
        "app_id": app_id,
        "version": version,
        "exported_at": now.isoformat(),
        "data": data is not None,
        "state": state is not None,
    }
    fd, tmp_name = tempfile.mkstemp(prefix=".export-", suffix=".partial", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, "meta.json", json.dumps(meta, indent=2).encode())
            if state is not None:
                _add_bytes(tar, "state.json", json.dumps(state).encode())
            if data is not None:
                for entry in sorted(data.iterdir()):
                    if entry.name == "lost+found":  # ext4's, not the app's
                        continue
                    tar.add(entry, arcname=f"data/{entry.name}")
            raw.flush()
            os.fsync(raw.fileno())
        tmp.chmod(0o600)
        tmp.rename(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def restore(archive: Path, dest: Path) -> dict[str, Any]:
    """Unpack ``archive`` into ``dest`` (``data/``, ``state.json``); its ``meta.json``.

    Extraction uses tarfile's ``data`` filter: no absolute paths, no ``..``, no links
    out of ``dest``, no device files; a refused member refuses the archive.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    meta_file = dest / "meta.json"
    meta: dict[str, Any] = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    return meta


def move_contents(source: Path, dest: Path) -> int:
    """Move every entry of ``source`` into ``dest`` (which exists); how many moved.

    Idempotent: what was moved before a crash is no longer in ``source``.
    """
    if not source.is_dir():
        return 0
    moved = 0
    for entry in sorted(source.iterdir()):
        target = dest / entry.name
        if target.exists() or target.is_symlink():
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        shutil.move(str(entry), str(target))
        moved += 1
    return moved
