"""State backups: files written atomically, restore round trip, routes for org admins, and
``apprt backup`` / ``apprt restore`` against a running platform."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from apprt.accounts.models import OrgRole
from apprt.db.engine import session_scope
from apprt.services import backup, state
from apprt.services.errors import BackupNotFoundError, InvalidBackupError
from apprt.services.state import Quota
from tests.conftest import CliResult
from tests.runtime._platform import Platform, running_platform

APP = "com.test.notes"
BIG = Quota(max_bytes=10**9, max_keys=10**6)


def _fill(sessions: sessionmaker[Session], org: str, items: dict[str, Any]) -> None:
    with session_scope(sessions) as session:
        for key, value in items.items():
            state.put(session, org, APP, key, value, quota=BIG)


def _dump(sessions: sessionmaker[Session], org: str) -> dict[str, Any]:
    with session_scope(sessions) as session:
        return {e["key"]: e["value"] for e in state.export_state(session, org, APP)["entries"]}


def test_backup_and_restore_round_trip(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _fill(sessions, "roundtrip", {"a": 1, "b": {"é": [1, 2]}, "notes/1": "hi"})
    with session_scope(sessions) as session:
        path = backup.backup(session, "roundtrip", APP, data_dir=tmp_path, reason="upgrade")
    assert path.parent == tmp_path / "backups" / "roundtrip" / APP
    assert path.name.endswith("-upgrade.json") and oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    document = json.loads(path.read_text())
    assert document["reason"] == "upgrade" and document["keys"] == 3
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file left

    _fill(sessions, "roundtrip", {"a": 2, "c": "new"})
    with session_scope(sessions) as session:
        result = backup.restore(session, "roundtrip", APP, data_dir=tmp_path)
    assert result.restored_from == path.name and result.keys == 3
    assert _dump(sessions, "roundtrip") == {"a": 1, "b": {"é": [1, 2]}, "notes/1": "hi"}
    # the state before the restore was kept, so the restore can be undone
    assert result.safety_backup is not None
    with session_scope(sessions) as session:
        backup.restore(session, "roundtrip", APP, path=result.safety_backup, data_dir=tmp_path)
    assert _dump(sessions, "roundtrip")["c"] == "new"
    listed = backup.list_backups("roundtrip", APP, data_dir=tmp_path)
    assert [b.reason for b in listed] == ["before-restore", "before-restore", "upgrade"]


def test_backups_are_pruned_and_names_checked(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _fill(sessions, "prune", {"a": 1})
    made = []
    for _ in range(5):
        with session_scope(sessions) as session:
            made.append(backup.backup(session, "prune", APP, data_dir=tmp_path, keep=3))
    names = [b.name for b in backup.list_backups("prune", APP, data_dir=tmp_path)]
    assert names == [p.name for p in reversed(made[-3:])]
    with pytest.raises(BackupNotFoundError):
        backup.backup_path("prune", APP, "../../etc/passwd", data_dir=tmp_path)
    with pytest.raises(BackupNotFoundError):
        backup.backup_path("prune", APP, "20260101T000000.000000Z.json", data_dir=tmp_path)
    with pytest.raises(InvalidBackupError, match="not an organization slug"):
        backup.backup_dir("../x", APP, data_dir=tmp_path)
    with pytest.raises(InvalidBackupError, match="not an app id"):
        backup.backup_dir("prune", "../../x", data_dir=tmp_path)
    with pytest.raises(BackupNotFoundError, match="has no backup"), session_scope(sessions) as s:
        backup.restore(s, "nobackups", APP, data_dir=tmp_path)


def test_a_failed_write_leaves_nothing(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(sessions, "fails", {"a": 1})

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"), session_scope(sessions) as session:
        backup.backup(session, "fails", APP, data_dir=tmp_path)
    assert os.listdir(tmp_path / "backups" / "fails" / APP) == []


def test_a_bad_backup_is_refused_before_touching_the_state(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _fill(sessions, "bad", {"a": 1})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with (
        pytest.raises(InvalidBackupError, match="cannot be read as JSON"),
        session_scope(sessions) as session,
    ):
        backup.restore(session, "bad", APP, path=broken, data_dir=tmp_path)
    other = {"format": state.EXPORT_FORMAT, "org": "someone-else", "app_id": APP, "entries": []}
    with (
        pytest.raises(InvalidBackupError, match="is of org 'someone-else'"),
        session_scope(sessions) as session,
    ):
        backup.restore(session, "bad", APP, data=other, data_dir=tmp_path)
    assert _dump(sessions, "bad") == {"a": 1}
    assert not (tmp_path / "backups" / "bad").exists()  # not even a safety backup


# -- over the API and the CLI ----------------------------------------------------------


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("services-backup")) as platform:
        platform.org("acme")
        platform.org("other")
        yield platform


def test_routes_are_for_org_admins(platform: Platform) -> None:
    _fill(platform.app.state.session_factory, "acme", {"k": "v", "n": 1})
    admin = {"authorization": f"Bearer {platform.member_token('acme', 'ann', OrgRole.ORG_ADMIN)}"}
    member = {"authorization": f"Bearer {platform.member_token('acme', 'bob')}"}
    stranger = {"authorization": f"Bearer {platform.member_token('other', 'eve')}"}
    base = f"{platform.url}/api/v1/orgs/acme/apps/{APP}/backups"
    made = httpx.post(base, headers=admin, timeout=30)
    assert made.status_code == 201, made.text
    assert made.json()["keys"] == 2 and made.json()["reason"] == "manual"
    name = made.json()["name"]
    assert [b["name"] for b in httpx.get(base, headers=admin, timeout=30).json()] == [name]
    document = httpx.get(f"{base}/{name}", headers=admin, timeout=30).json()
    assert {e["key"] for e in document["entries"]} == {"k", "n"}
    for who, status in ((member, 403), (stranger, 404)):
        assert httpx.post(base, headers=who, timeout=30).status_code == status
        assert httpx.get(base, headers=who, timeout=30).status_code == status
        assert httpx.post(f"{base}/restore", headers=who, json={}, timeout=30).status_code == status
    assert httpx.get(f"{base}/nope.json", headers=admin, timeout=30).status_code == 404

    _fill(platform.app.state.session_factory, "acme", {"k": "changed"})
    restored = httpx.post(f"{base}/restore", headers=admin, json={"name": name}, timeout=30)
    assert restored.status_code == 200, restored.text
    assert restored.json()["restored_from"] == name and restored.json()["safety_backup"]
    assert _dump(platform.app.state.session_factory, "acme")["k"] == "v"
    audit = httpx.get(f"{platform.url}/api/v1/orgs/acme/audit", headers=admin, timeout=30)
    events = audit.json()["events"]
    assert [(e["operation"], e["user"]) for e in events[:2]] == [
        ("state.restore", "ann"),
        ("state.backup", "ann"),
    ]


def test_cli_backup_and_restore(
    platform: Platform, apprt: Callable[..., CliResult], tmp_path: Path
) -> None:
    sessions = platform.app.state.session_factory
    _fill(sessions, "other", {"doc": {"v": 1}})
    common = ["--org", "other", "--url", platform.url, "--token", platform.token]
    out = tmp_path / "saved" / "other.json"
    made = apprt("backup", APP, *common, "-o", out, "--json")
    assert made.exit_code == 0, made.stderr
    assert made.json()["keys"] == 1 and json.loads(out.read_text())["entries"][0]["key"] == "doc"
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    _fill(sessions, "other", {"doc": {"v": 2}, "extra": 1})
    restored = apprt("restore", APP, *common, "--from", out)
    assert restored.exit_code == 0, restored.stderr
    assert "restored 1 keys" in restored.stdout
    assert _dump(sessions, "other") == {"doc": {"v": 1}}

    listed = apprt("backup", APP, *common, "--list", "--json").json()
    safety = next(b["name"] for b in listed if b["reason"] == "before-restore")
    undone = apprt("restore", APP, *common, "--backup", safety, "--json")
    assert undone.exit_code == 0 and undone.json()["keys"] == 2
    assert _dump(sessions, "other") == {"doc": {"v": 2}, "extra": 1}

    refused = apprt("restore", APP, *common, "--backup", "missing.json", "--json")
    assert refused.exit_code == 1 and refused.json()["ok"] is False
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert apprt("restore", APP, *common, "--from", bad).exit_code == 1
