"""apprt org / user / login against a live platform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests._serve import running_server
from tests.conftest import CliResult


def test_org_user_login_flow(
    apprt: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(tmp_path / "data", tmp_path / "serve.log") as base:
        admin = (tmp_path / "data" / "admin.token").read_text().strip()
        monkeypatch.setenv("APPRT_URL", base)
        monkeypatch.setenv("APPRT_TOKEN", admin)
        assert apprt("org", "create", "acme", "--name", "Acme Corp").exit_code == 0
        created = apprt(
            "user", "create", "ada", "--password-stdin", "--json", input="a long passphrase\n"
        )
        assert created.exit_code == 0 and created.json()["role"] == "member"
        assert apprt("user", "grant", "ada", "--org", "acme", "--role", "org_admin").exit_code == 0

        session = apprt("login", "ada", "--password-stdin", "--json", input="a long passphrase\n")
        assert session.exit_code == 0, session.stderr
        ada = session.json()["token"]
        listed = apprt("org", "list", "--token", ada, "--json")
        assert [o["slug"] for o in listed.json()] == ["acme"]
        members = apprt("org", "members", "acme", "--token", ada, "--json").json()
        assert members == [{"user": "ada", "role": "org_admin"}]

        denied = apprt("org", "create", "other", "--token", ada, "--json")
        assert denied.exit_code == 1
        assert "platform admin" in denied.json()["problems"][0]["reason"]
        assert apprt("login", "ada", "--password-stdin", input="wrong passphrase!\n").exit_code == 1
