"""``apprt demo`` (what ``make up`` runs once the platform answers): the examples
published with a development key and installed into ``demo``; run twice, the second
run reuses everything."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

import httpx

from tests.conftest import CliResult
from tests.install.conftest import CRM, EXAMPLES, NOTES, SALES, CliRun, InstallPlatform, Packages
from tests.runtime._platform import kill_recorded


def test_demo_seeds_a_running_platform_and_is_idempotent(
    tmp_path: Path, packages: Packages, apprt: CliRun
) -> None:
    platform = InstallPlatform(tmp_path, packages, publisher=False)
    try:
        data = platform.settings.data_dir

        def demo() -> CliResult:
            return apprt("demo", "--url", platform.url, "--data-dir", data, "--examples", EXAMPLES)

        first = demo()
        assert first.exit_code == 0, first.stdout + first.stderr
        out = first.stdout
        assert "published (approved)" in out and "installing com.example.sales-dashboard" in out
        for app in (CRM, SALES, NOTES):
            assert f"{platform.url}/apps/demo/{app}/" in out
        assert str(data / "admin.token") in out
        password = (data / "demo" / "demo.password").read_text().strip()
        assert f"password {password}" in out
        assert stat.S_IMODE((data / "demo" / "demo.password").stat().st_mode) == 0o600
        assert (data / "demo" / "keys" / "example.key").is_file()

        second = demo()
        assert second.exit_code == 0, second.stdout + second.stderr
        assert second.stdout.count("already published") == 3
        assert second.stdout.count("already installed") == 2
        # The demo user logs in with the password and reaches the apps of its org.
        login = httpx.post(
            f"{platform.url}/api/v1/login", json={"name": "demo", "password": password}
        )
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        summary = httpx.get(
            f"{platform.url}/apps/demo/{SALES}/api/summary",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert summary.status_code == 200 and summary.json()["organization"] == "demo"
    finally:
        with contextlib.suppress(Exception):
            platform.close()
        kill_recorded(platform.settings, platform.platform.pids)
