from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from apprt.accounts.models import ApiToken, Role, User
from apprt.db import sqlite
from apprt.db.base import utcnow
from apprt.db.engine import make_engine, session_scope
from apprt.settings import Settings


def test_sqlite_file_gets_its_parent_directory_and_pragmas(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "x.db"
    engine = make_engine(Settings(data_dir=tmp_path, database_url=f"sqlite:///{db}"))
    try:
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA busy_timeout").scalar() == sqlite.BUSY_TIMEOUT_MS
        assert db.exists()
    finally:
        engine.dispose()


def test_in_memory_sqlite_needs_no_directory(tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "unused", database_url="sqlite://"))
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT 1")) == 1
        assert not (tmp_path / "unused").exists()
    finally:
        engine.dispose()


def test_sqlite_setup_is_skipped_for_other_dialects() -> None:
    url = sa.engine.make_url("postgresql+psycopg://u:p@localhost/apprt")
    assert not sqlite.is_sqlite(url)
    assert sqlite.prepare(url) == {}


def test_session_scope_commits(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        session.add(User(name="ann"))
    with session_scope(sessions) as session:
        assert session.scalars(sa.select(User.name)).all() == ["ann"]


def test_session_scope_rolls_back_on_error(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), session_scope(sessions) as session:
        session.add(User(name="ann"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(sessions) as session:
        assert session.scalars(sa.select(User)).all() == []


def test_foreign_keys_are_enforced(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), session_scope(sessions) as session:
        session.add(ApiToken(user_id=999, name="x", prefix="p", token_hash="0" * 64))


def test_timestamps_come_back_aware_utc(sessions: sessionmaker[Session]) -> None:
    paris = timezone(timedelta(hours=2))
    moment = datetime(2026, 5, 1, 14, 30, tzinfo=paris)
    with session_scope(sessions) as session:
        session.add(User(name="ann", role=Role.MEMBER, created_at=moment))
    with session_scope(sessions) as session:
        user = session.scalars(sa.select(User)).one()
        assert user.created_at == moment
        assert user.created_at.tzinfo == UTC
        assert user.created_at.hour == 12
        assert utcnow() > user.created_at  # comparable with aware datetimes


def test_naive_timestamps_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"), session_scope(sessions) as s:
        s.add(User(name="ann", created_at=datetime(2026, 5, 1)))


def test_constraint_names_follow_the_convention(migrated: sa.Engine) -> None:
    inspector = sa.inspect(migrated)
    assert inspector.get_unique_constraints("users")[0]["name"] == "uq_users_name"
    assert inspector.get_foreign_keys("api_tokens")[0]["name"] == "fk_api_tokens_user_id_users"
