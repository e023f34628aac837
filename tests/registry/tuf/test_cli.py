"""``apprt registry tuf``: status, keygen, offline renewal and key rotation on the data
directory; a running server picks a rotated key up by itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.engine import make_engine, session_factory, session_scope
from apprt.db.migrate import upgrade_to_head
from apprt.registry.tuf.config import TufConfig
from apprt.registry.tuf.repository import TufRepository
from apprt.settings import Settings
from tests.conftest import CliResult

Apprt = Callable[..., CliResult]


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    upgrade_to_head(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def server_repo(sessions: sessionmaker[Session], settings: Settings) -> TufRepository:
    """The repository as a running server holds it (bootstrapped, keys in memory)."""
    repo = TufRepository(sessions, settings, TufConfig())
    repo.bootstrap()
    return repo


def test_status(apprt: Apprt, server_repo: TufRepository, settings: Settings) -> None:
    result = apprt("registry", "tuf", "status", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["roles"]["root"]["version"] == 1
    assert data["offline_keys_present"] == {"root": True, "targets": True}
    text = apprt("registry", "tuf", "status")
    assert "bins-*" in text.stdout and "root key  present" in text.stdout


def test_renew_with_an_offline_key(
    apprt: Apprt, server_repo: TufRepository, settings: Settings
) -> None:
    keys = settings.data_dir / "tuf-keys"
    offline = settings.data_dir.parent / "usb"
    offline.mkdir()
    (keys / "targets.key").rename(offline / "targets.key")
    assert apprt("registry", "tuf", "status", "--json").json()["offline_keys_present"] == {
        "root": True,
        "targets": False,
    }
    result = apprt(
        "registry", "tuf", "renew", "targets", "--key", offline / "targets.key", "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert result.json() == {"role": "targets", "version": 2}
    wrong = apprt("registry", "tuf", "renew", "root", "--key", offline / "targets.key")
    assert wrong.exit_code == 1
    assert "not a root key" in wrong.stderr


def test_rotate_timestamp_and_the_server_follows(
    apprt: Apprt, server_repo: TufRepository, settings: Settings
) -> None:
    keys = settings.data_dir / "tuf-keys"
    old = server_repo.signer("timestamp").public_key.keyid
    result = apprt("registry", "tuf", "rotate", "timestamp", "--key", keys / "root.key", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["version"] == 2
    assert not (keys / "timestamp.key.new").exists()

    # The server still holds the old key in memory; its next bump reloads the file.
    with session_scope(server_repo.sessions) as session:
        server_repo.published(
            session, app_id="com.example.a", version="1.0.0", sha256="a" * 64, length=1
        )
    new = server_repo.signer("timestamp").public_key.keyid
    assert new != old
    status = apprt("registry", "tuf", "status", "--json").json()
    assert status["roles"]["root"]["version"] == 2


def test_keygen(apprt: Apprt, settings: Settings) -> None:
    path = settings.data_dir.parent / "k.key"
    result = apprt("registry", "tuf", "keygen", path, "--json")
    assert result.exit_code == 0
    assert len(result.json()["keyid"]) == 64
    again = apprt("registry", "tuf", "keygen", path)
    assert again.exit_code == 1
