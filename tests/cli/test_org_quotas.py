"""apprt org create/update with quotas against a live platform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests._serve import running_server
from tests.conftest import CliResult


def test_org_quotas_from_the_cli(
    apprt: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(tmp_path / "data", tmp_path / "serve.log") as base:
        monkeypatch.setenv("APPRT_URL", base)
        monkeypatch.setenv("APPRT_TOKEN", (tmp_path / "data" / "admin.token").read_text().strip())
        created = apprt("org", "create", "acme", "--max-apps", "5", "--max-memory", "1024")
        assert created.exit_code == 0, created.stderr
        assert "5 apps, 1024 MB memory" in created.stdout
        updated = apprt("org", "update", "acme", "--max-storage", "300", "--json")
        assert updated.exit_code == 0, updated.stderr
        org = updated.json()
        assert (org["max_apps"], org["max_memory_mb"], org["max_storage_mb"]) == (5, 1024, 300)
        listed = apprt("org", "list")
        assert "300 MB" in listed.stdout
        nothing = apprt("org", "update", "acme")
        assert nothing.exit_code != 0 and "nothing to change" in nothing.stderr
        negative = apprt("org", "update", "acme", "--max-apps", "-1")
        assert negative.exit_code != 0
