from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.engine import make_engine, session_factory
from apprt.db.migrate import upgrade_to_head
from apprt.settings import Settings


@pytest.fixture
def migrated(settings: Settings) -> Iterator[Engine]:
    """An engine on a fresh SQLite file migrated to head."""
    engine = make_engine(settings)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(migrated: Engine) -> sessionmaker[Session]:
    return session_factory(migrated)
