"""The repository in-process: bootstrap, publication listener, refresh, offline renewal,
key rotation, and concurrent publishes (with a controllable clock)."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from apprt.db.engine import make_engine, session_factory, session_scope
from apprt.db.migrate import upgrade_to_head
from apprt.registry.tuf.config import TufConfig
from apprt.registry.tuf.keys import TufKeyError, generate_key_file, load_key_file
from apprt.registry.tuf.repository import (
    TufConflictError,
    TufRepository,
    TufStateError,
    target_path,
)
from apprt.settings import Settings

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    upgrade_to_head(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo(sessions: sessionmaker[Session], settings: Settings, clock: Clock) -> TufRepository:
    repository = TufRepository(sessions, settings, TufConfig(), clock=clock)
    assert repository.bootstrap() is True
    return repository


def latest(repo: TufRepository, role: str) -> Metadata:  # type: ignore[type-arg]
    with session_scope(repo.sessions) as session:
        body = repo.metadata_bytes(session, role)
    assert body is not None
    return Metadata.from_bytes(body)


def versions(repo: TufRepository) -> dict[str, int]:
    with session_scope(repo.sessions) as session:
        return {role: v for role, (v, _) in repo.expiries(session).items()}


def publish(repo: TufRepository, app_id: str, version: str, digest: str, length: int) -> None:
    with session_scope(repo.sessions) as session:
        repo.published(session, app_id=app_id, version=version, sha256=digest, length=length)


def bin_of(repo: TufRepository, path: str) -> Metadata:  # type: ignore[type-arg]
    targets = latest(repo, "targets").signed
    assert isinstance(targets, Targets)
    assert targets.delegations is not None and targets.delegations.succinct_roles is not None
    return latest(repo, targets.delegations.succinct_roles.get_role_for_target(path))


# -- bootstrap ---------------------------------------------------------------------


def test_bootstrap_creates_keys_and_first_metadata(repo: TufRepository, settings: Settings) -> None:
    key_dir = settings.data_dir / "tuf-keys"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    for role in ("root", "targets", "bins", "snapshot", "timestamp"):
        assert stat.S_IMODE((key_dir / f"{role}.key").stat().st_mode) == 0o600
    root = latest(repo, "root")
    assert isinstance(root.signed, Root)
    assert root.signed.version == 1
    assert root.signed.consistent_snapshot is True
    root.signed.verify_delegate("root", root.signed_bytes, root.signatures)
    for role in ("targets", "snapshot", "timestamp"):
        md = latest(repo, role)
        root.signed.verify_delegate(role, md.signed_bytes, md.signatures)
    assert root.signed.expires == datetime(2027, 1, 1, 12, 0, tzinfo=UTC)  # 365 days
    targets = latest(repo, "targets").signed
    assert isinstance(targets, Targets)
    assert targets.targets == {}
    assert targets.delegations is not None
    succinct = targets.delegations.succinct_roles
    assert succinct is not None and succinct.bit_length == 4
    assert len(list(succinct.get_roles())) == 16
    snapshot = latest(repo, "snapshot").signed
    assert isinstance(snapshot, Snapshot)
    assert set(snapshot.meta) == {"targets.json"} | {f"bins-{i:x}.json" for i in range(16)}
    timestamp = latest(repo, "timestamp").signed
    assert isinstance(timestamp, Timestamp)
    assert timestamp.snapshot_meta.version == 1
    assert timestamp.expires == datetime(2026, 1, 2, 12, 0, tzinfo=UTC)  # 1 day


def test_second_bootstrap_keeps_the_repository(
    repo: TufRepository, sessions: sessionmaker[Session], settings: Settings
) -> None:
    again = TufRepository(sessions, settings, TufConfig())
    assert again.bootstrap() is False
    assert versions(again)["root"] == 1


def test_a_foreign_online_key_is_refused_at_start(
    repo: TufRepository, sessions: sessionmaker[Session], settings: Settings
) -> None:
    key = settings.data_dir / "tuf-keys" / "timestamp.key"
    key.unlink()
    generate_key_file(key)
    with pytest.raises(TufStateError) as error:
        TufRepository(sessions, settings, TufConfig()).bootstrap()
    assert "timestamp key file is not a key the repository's metadata trusts" in str(error.value)


def test_a_missing_online_key_is_refused_at_start(
    repo: TufRepository, sessions: sessionmaker[Session], settings: Settings
) -> None:
    (settings.data_dir / "tuf-keys" / "snapshot.key").unlink()
    with pytest.raises(TufStateError) as error:
        TufRepository(sessions, settings, TufConfig()).bootstrap()
    assert "no TUF key file" in str(error.value)


def test_key_files_must_be_ed25519(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(TufKeyError):
        load_key_file(bad)
    with pytest.raises(FileExistsError):
        generate_key_file(bad)


def test_keys_can_live_elsewhere(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    config = TufConfig(
        key_dir=tmp_path / "online", root_key=tmp_path / "usb" / "r.key", targets_key=None
    )
    TufRepository(sessions, settings, config).bootstrap()
    assert (tmp_path / "usb" / "r.key").exists()
    assert (tmp_path / "online" / "targets.key").exists()
    assert (tmp_path / "online" / "timestamp.key").exists()
    assert not (settings.data_dir / "tuf-keys").exists()


# -- publication listener ------------------------------------------------------------


def test_published_signs_the_target_into_its_bin(repo: TufRepository) -> None:
    publish(repo, "com.example.a", "1.2.0", DIGEST_A, 1234)
    path = target_path("com.example.a", "1.2.0")
    assert path == "com.example.a/1.2.0.apppkg"
    md = bin_of(repo, path)
    target = md.signed.targets[path]
    assert target.length == 1234
    assert target.hashes == {"sha256": DIGEST_A}
    assert target.custom == {"app_id": "com.example.a", "version": "1.2.0"}
    targets = latest(repo, "targets")
    name = md.signed.type  # "targets": bins are targets payloads
    assert name == "targets"
    assert isinstance(targets.signed, Targets)
    assert targets.signed.version == 1  # top-level targets (offline) untouched
    v = versions(repo)
    assert v["snapshot"] == 2 and v["timestamp"] == 2
    snapshot = latest(repo, "snapshot").signed
    assert isinstance(snapshot, Snapshot)
    changed = [m for m, meta in snapshot.meta.items() if meta.version == 2]
    assert len(changed) == 1 and changed[0].startswith("bins-")


def test_published_again_is_idempotent_and_other_bytes_conflict(repo: TufRepository) -> None:
    publish(repo, "com.example.a", "1.0.0", DIGEST_A, 10)
    before = versions(repo)
    publish(repo, "com.example.a", "1.0.0", DIGEST_A, 10)
    assert versions(repo) == before
    with pytest.raises(TufConflictError) as error:
        publish(repo, "com.example.a", "1.0.0", DIGEST_B, 10)
    assert error.value.status_code == 409
    assert versions(repo) == before  # rolled back with the transaction


def test_unpublished_removes_the_target(repo: TufRepository) -> None:
    publish(repo, "com.example.a", "1.0.0", DIGEST_A, 10)
    with session_scope(repo.sessions) as session:
        repo.unpublished(session, app_id="com.example.a", version="1.0.0")
    path = target_path("com.example.a", "1.0.0")
    assert path not in bin_of(repo, path).signed.targets
    assert versions(repo)["timestamp"] == 3
    with session_scope(repo.sessions) as session:  # unknown: nothing to do
        repo.unpublished(session, app_id="com.example.a", version="9.0.0")
    assert versions(repo)["timestamp"] == 3


def test_a_failing_transaction_leaves_no_metadata(repo: TufRepository) -> None:
    before = versions(repo)
    with pytest.raises(RuntimeError), session_scope(repo.sessions) as session:
        repo.published(session, app_id="com.example.a", version="1.0.0", sha256=DIGEST_A, length=1)
        raise RuntimeError("the registry's check failed after the listener ran")
    assert versions(repo) == before
    with session_scope(repo.sessions) as session:
        assert repo.target(session, "com.example.a/1.0.0.apppkg") is None


def test_concurrent_publishes_are_serialised(repo: TufRepository) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            publish(repo, f"com.example.c{i}", "1.0.0", f"{i:064x}", i + 1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    v = versions(repo)
    assert v["snapshot"] == 9 and v["timestamp"] == 9  # one bump each, none lost
    snapshot = latest(repo, "snapshot").signed
    assert isinstance(snapshot, Snapshot)
    for i in range(8):
        path = target_path(f"com.example.c{i}", "1.0.0")
        md = bin_of(repo, path)
        assert path in md.signed.targets
        # the snapshot names the newest version of every bin
        name = next(n for n in snapshot.meta if n != "targets.json" and _bin_has(repo, n, path))
        assert snapshot.meta[name].version == versions(repo)[name.removesuffix(".json")]


def _bin_has(repo: TufRepository, name: str, path: str) -> bool:
    return path in latest(repo, name.removesuffix(".json")).signed.targets


# -- keeping metadata fresh ------------------------------------------------------------


def test_refresh_resigns_what_is_past_half_its_lifetime(repo: TufRepository, clock: Clock) -> None:
    assert repo.refresh() == []
    clock.advance(hours=11)
    assert repo.refresh() == []
    clock.advance(hours=2)  # timestamp (1 day) has less than half left
    assert repo.refresh() == ["timestamp"]
    assert versions(repo)["timestamp"] == 2
    clock.advance(days=3, hours=1)  # snapshot and bins (7 days) too
    done = repo.refresh()
    assert done == [*(f"bins-{i:x}" for i in range(16)), "snapshot", "timestamp"]
    clock.advance(days=50)  # targets (90 days), key present: renewed too
    assert repo.refresh()[:1] == ["targets"]
    timestamp = latest(repo, "timestamp").signed
    assert timestamp.expires > clock.now


def test_offline_roles_are_left_alone_without_their_key(
    repo: TufRepository, clock: Clock, settings: Settings
) -> None:
    keys = settings.data_dir / "tuf-keys"
    (keys / "root.key").rename(settings.data_dir / "root.key.offline")
    (keys / "targets.key").rename(settings.data_dir / "targets.key.offline")
    clock.advance(days=200)
    done = repo.refresh()
    assert "root" not in done and "targets" not in done
    assert "timestamp" in done
    assert versions(repo)["root"] == 1
    # The offline procedure: renew with the key brought back for the occasion.
    assert repo.renew("targets", load_key_file(settings.data_dir / "targets.key.offline")) == 2
    assert repo.renew("root", load_key_file(settings.data_dir / "root.key.offline")) == 2
    root = latest(repo, "root")
    root.signed.verify_delegate("root", root.signed_bytes, root.signatures)
    snapshot = latest(repo, "snapshot").signed
    assert snapshot.meta["targets.json"].version == 2


def test_renew_refuses_a_wrong_key_and_online_roles(repo: TufRepository, tmp_path: Path) -> None:
    stranger = generate_key_file(tmp_path / "stranger.key")
    with pytest.raises(TufStateError, match="not a root key"):
        repo.renew("root", stranger)
    with pytest.raises(TufStateError, match="online role"):
        repo.renew("timestamp", stranger)


def test_rotating_an_online_key(repo: TufRepository, settings: Settings, tmp_path: Path) -> None:
    root_key = load_key_file(settings.data_dir / "tuf-keys" / "root.key")
    new_key = generate_key_file(tmp_path / "timestamp-2.key")
    assert repo.rotate("timestamp", root_key, new_key) == 2
    root = latest(repo, "root").signed
    assert isinstance(root, Root)
    assert root.roles["timestamp"].keyids == [new_key.public_key.keyid]
    timestamp = latest(repo, "timestamp")
    root.verify_delegate("timestamp", timestamp.signed_bytes, timestamp.signatures)

    targets_key = load_key_file(settings.data_dir / "tuf-keys" / "targets.key")
    new_bins = generate_key_file(tmp_path / "bins-2.key")
    assert repo.rotate("bins", targets_key, new_bins) == 2
    path = "com.example.z/1.0.0.apppkg"
    publish(repo, "com.example.z", "1.0.0", DIGEST_A, 1)
    targets = latest(repo, "targets").signed
    assert isinstance(targets, Targets)
    md = bin_of(repo, path)
    role = targets.delegations.succinct_roles.get_role_for_target(path)  # type: ignore[union-attr]
    targets.verify_delegate(role, md.signed_bytes, md.signatures)


def test_status(repo: TufRepository) -> None:
    publish(repo, "com.example.a", "1.0.0", DIGEST_A, 1)
    status = repo.status()
    assert status["targets"] == 1
    assert status["roles"]["root"]["version"] == 1
    assert status["offline_keys_present"] == {"root": True, "targets": True}
