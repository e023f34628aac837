"""Backups of an app's state in an organization: JSON files, written atomically.

A backup is ``<data_dir>/backups/<org>/<app id>/<UTC timestamp>-<reason>.json``
(mode 0600, directories 0700), holding :func:`apprt.services.state.export_state`'s
document plus the reason. It is written to a temporary file beside it, flushed to
disk, then renamed: a backup is whole or absent. The newest ``keep`` backups of each
app+org are kept (``backup_keep``, 20), older ones removed after each new one.

Taken before every upgrade and uninstall (the install engine calls :func:`backup`
with ``reason="upgrade"`` / ``"uninstall"``), and on demand (``apprt backup``)::

    path = backup(session, "acme", "com.example.notes", data_dir=settings.data_dir)
    restore(session, "acme", "com.example.notes", data_dir=settings.data_dir)  # newest
    restore(session, "acme", "com.example.notes", path=path)                    # that one

:func:`restore` first backs up the current state (reason ``before-restore``), so a
restore can itself be undone, then replaces the state in the session's transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from apprt.accounts.orgs import ORG_SLUG_PATTERN
from apprt.manifest.models import APP_ID_PATTERN
from apprt.services import state
from apprt.services.errors import BackupNotFoundError, InvalidBackupError
from apprt.settings import Settings

DEFAULT_KEEP = 20
_NAME_RE = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)(?:-([a-z0-9-]{1,32}))?(?:\.(\d+))?\.json$")
_REASON_RE = re.compile(r"^[a-z0-9-]{1,32}$")


class BackupInfo(BaseModel):
    name: str
    created_at: datetime
    reason: str
    size: int


@dataclass(frozen=True)
class RestoreResult:
    restored_from: str  # the backup's name, or "upload"
    keys: int
    bytes: int
    safety_backup: Path | None  # the state as it was before the restore


def _check_ids(org: str, app_id: str) -> None:
    # both name directories: refuse anything that is not a slug or an app id
    if not re.match(ORG_SLUG_PATTERN, org):
        raise InvalidBackupError.one(f"{org!r} is not an organization slug", location="org")
    if not re.match(APP_ID_PATTERN, app_id):
        raise InvalidBackupError.one(f"{app_id!r} is not an app id", location="app")


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else Settings().data_dir


def backup_dir(org: str, app_id: str, *, data_dir: Path | None = None) -> Path:
    _check_ids(org, app_id)
    return _data_dir(data_dir) / "backups" / org / app_id


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` entirely, or is untouched (temp file, fsync, rename)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(0o600)  # before it is visible under its name
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def backup(
    session: Session,
    org: str,
    app_id: str,
    *,
    data_dir: Path | None = None,
    reason: str = "manual",
    keep: int | None = DEFAULT_KEEP,
) -> Path:
    """Write the app's state in ``org`` to a new backup file; its path.

    ``data_dir``: the platform's (default: from the environment, as ``Settings()``).
    ``keep``: how many backups of this app+org to keep (None: all).
    """
    if not _REASON_RE.match(reason):
        raise InvalidBackupError.one(
            f"reason {reason!r} must be 1-32 lowercase letters, digits or '-'",
            location="reason",
        )
    folder = backup_dir(org, app_id, data_dir=data_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = state.export_state(session, org, app_id)
    document["reason"] = reason
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    stamp = _stamp(datetime.now(UTC))
    path = folder / f"{stamp}-{reason}.json"
    counter = 1
    while path.exists():  # two backups in one microsecond
        path = folder / f"{stamp}-{reason}.{counter}.json"
        counter += 1
    write_atomically(path, data)
    if keep is not None:
        prune(org, app_id, keep=keep, data_dir=data_dir, spare=path)
    return path


def list_backups(org: str, app_id: str, *, data_dir: Path | None = None) -> list[BackupInfo]:
    """The app+org's backups, newest first."""
    folder = backup_dir(org, app_id, data_dir=data_dir)
    out = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = _NAME_RE.match(entry.name)
            if match is None or not entry.is_file():
                continue
            created = datetime.strptime(match[1], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
            out.append(
                BackupInfo(
                    name=entry.name,
                    created_at=created,
                    reason=match[2] or "",
                    size=entry.stat().st_size,
                )
            )
    return sorted(out, key=lambda b: b.name, reverse=True)


def prune(
    org: str, app_id: str, *, keep: int, data_dir: Path | None = None, spare: Path | None = None
) -> list[str]:
    """Remove all but the newest ``keep`` backups (never ``spare``); the names removed."""
    folder = backup_dir(org, app_id, data_dir=data_dir)
    removed = []
    for info in list_backups(org, app_id, data_dir=data_dir)[max(keep, 1) :]:
        if spare is not None and info.name == spare.name:
            continue
        with contextlib.suppress(FileNotFoundError):
            (folder / info.name).unlink()
            removed.append(info.name)
    return removed


def backup_path(org: str, app_id: str, name: str, *, data_dir: Path | None = None) -> Path:
    """The file of the backup ``name`` (refused unless it is a backup's name)."""
    if not _NAME_RE.match(name):
        raise BackupNotFoundError.one(
            f"{name!r} is not the name of a backup",
            location="name",
            hint="list them with `apprt backup APP --org ORG --list`",
        )
    path = backup_dir(org, app_id, data_dir=data_dir) / name
    if not path.is_file():
        raise BackupNotFoundError.one(
            f"no backup {name} of {app_id} in {org}",
            location="name",
            hint="list them with `apprt backup APP --org ORG --list`",
        )
    return path


def read_backup(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidBackupError.one(
            f"{path.name} cannot be read as JSON: {exc}",
            location="backup",
            hint="restore another backup",
        ) from None
    if not isinstance(data, dict):
        raise InvalidBackupError.one(f"{path.name} is not a JSON object", location="backup")
    return data


def restore(
    session: Session,
    org: str,
    app_id: str,
    *,
    path: Path | None = None,
    data: Mapping[str, Any] | None = None,
    data_dir: Path | None = None,
    keep: int | None = DEFAULT_KEEP,
) -> RestoreResult:
    """Replace the app's state in ``org`` with a backup: ``data`` (a document), the file
    ``path``, or else the newest backup. The current state is backed up first."""
    _check_ids(org, app_id)
    source = "upload"
    if data is None:
        if path is None:
            newest = list_backups(org, app_id, data_dir=data_dir)
            newest = [b for b in newest if b.reason != "before-restore"] or newest
            if not newest:
                raise BackupNotFoundError.one(
                    f"{app_id} has no backup in {org}",
                    location="backup",
                    hint=f"make one with `apprt backup {app_id} --org {org}`",
                )
            path = backup_dir(org, app_id, data_dir=data_dir) / newest[0].name
        data = read_backup(path)
        source = path.name
    for name, want in (("org", org), ("app_id", app_id)):
        if name in data and data[name] != want:
            raise InvalidBackupError.one(
                f"the backup is of {name} {data[name]!r}, not {want!r}",
                location=name,
                hint="restore a backup of this app in this organization",
            )
    state.check_export(data)  # refuse a bad document before touching anything
    safety = backup(session, org, app_id, data_dir=data_dir, reason="before-restore", keep=keep)
    usage = state.import_state(session, org, app_id, data)
    return RestoreResult(
        restored_from=source, keys=usage.keys, bytes=usage.bytes, safety_backup=safety
    )
