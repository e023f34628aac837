"""Fixtures shared by the whole suite; domain-specific ones live next to their tests.

Every test runs with no ``APPRT_*`` variable from the developer's shell and with
``APPRT_DATA_DIR`` pointing into its own temporary directory, so nothing reads or
writes the real ``~/.local/share/apprt``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from apprt.cli import cli
from apprt.db.engine import make_engine, session_factory
from apprt.db.migrate import upgrade_to_head
from apprt.server import create_app
from apprt.settings import Settings


@pytest.fixture(autouse=True)
def _isolated_apprt_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("APPRT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("APPRT_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh data directory (SQLite file, blobs, admin token inside)."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """A client of the whole platform, lifespan run (DB migrated, admin bootstrapped)."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def admin_headers(app_client: TestClient, settings: Settings) -> dict[str, str]:
    """``Authorization`` header of the bootstrapped platform admin."""
    token = settings.admin_token_path.read_text().strip()
    return {"Authorization": f"Bearer {token}"}


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def apprt() -> Callable[..., CliResult]:
    """Run ``apprt ARGS...`` in-process; returns exit code, stdout and stderr."""
    runner = CliRunner()

    def run(*args: object, input: str | None = None) -> CliResult:
        result = runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def db_session(settings: Settings) -> Iterator[Session]:
    """A session on a fresh database migrated to head (not committed unless you do)."""
    engine = make_engine(settings)
    upgrade_to_head(engine)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()
