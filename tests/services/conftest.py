"""Fixtures of the services tests: a migrated database, and a session factory on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.engine import make_engine, session_factory
from apprt.db.migrate import upgrade_to_head
from apprt.settings import Settings


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """Sessions on one SQLite file (WAL) migrated to head, shared by a module's tests
    (each test uses its own organization or app id)."""
    data = tmp_path_factory.mktemp("services-db")
    engine = make_engine(Settings(data_dir=Path(data)))
    upgrade_to_head(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()
