from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine

from apprt.db import migrate
from apprt.db.engine import make_engine
from apprt.db.models import metadata
from apprt.settings import Settings


def test_upgrade_creates_every_table_on_an_empty_database(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade_to_head(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        tables = set(sa.inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert "alembic_version" in tables
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_across_restarts(settings: Settings) -> None:
    first = make_engine(settings)
    try:
        migrate.upgrade_to_head(first)
        with first.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (name, role, created_at, disabled) "
                    "VALUES ('kept', 'member', '2026-01-01 00:00:00.000000', 0)"
                )
            )
    finally:
        first.dispose()
    second = make_engine(settings)  # a restart: new engine, same file
    try:
        migrate.upgrade_to_head(second)
        migrate.upgrade_to_head(second)
        assert migrate.current_revision(second) == migrate.head_revision()
        with second.connect() as conn:
            assert conn.scalar(sa.text("SELECT name FROM users")) == "kept"
    finally:
        second.dispose()


def test_migrated_schema_matches_the_models(migrated: Engine) -> None:
    assert migrate.schema_diff(migrated) == []


def test_schema_diff_notices_a_missing_table(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
        diff = migrate.schema_diff(engine)
        kinds = {entry[0] for entry in diff if isinstance(entry, tuple)}
        assert {"add_table", "remove_table"} <= kinds
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(migrated: Engine) -> None:
    config = migrate.alembic_config(migrated)
    command.downgrade(config, "base")
    assert set(sa.inspect(migrated).get_table_names()) == {"alembic_version"}
    migrate.upgrade_to_head(migrated)
    assert migrate.schema_diff(migrated) == []


def test_scripts_are_found_through_the_package_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert migrate.head_revision() is not None
