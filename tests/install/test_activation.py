"""Step 10 makes the app reachable, not step 7: while an install is still checking
the app (its health and install hook), the gateway answers that the app is not
ready yet (503, retry); once the job is done, the URL answers."""

from __future__ import annotations

import time
from pathlib import Path

from apprt.package import build_package, load_private_key, sign_package
from tests.install.conftest import InstallPlatform, make_app

APP = "com.example.gated"

# The install hook says it runs, then waits (bounded) for the test's go-ahead.
HOOKS = """\
import os
import time
from pathlib import Path


def on_install(context):
    data = Path(os.environ["APPRT_APP_DATA"])
    (data / "hook-running").write_text("1")
    deadline = time.monotonic() + 25  # under call_hook's 30 s
    while not (data / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"waited": True}
"""


def _gated_app(root: Path, key: Path) -> Path:
    package = make_app(root, APP, key=key)
    source = root / f"{APP}-1.0.0"
    (source / "backend" / "gated" / "hooks.py").write_text(HOOKS)
    toml = (source / "app.toml").read_text()
    hooks = '\n[backend.hooks]\ninstall = "gated.hooks:on_install"\n'
    (source / "app.toml").write_text(toml.replace("\n[frontend]\n", hooks + "\n[frontend]\n"))
    build_package(source, package)
    sign_package(package, load_private_key(key))
    return package


def test_the_gateway_routes_to_an_app_only_once_it_is_activated(
    platform: InstallPlatform, tmp_path: Path
) -> None:
    platform.publish(_gated_app(tmp_path, platform.packages.private_key))
    org = platform.org("gated")
    r = platform.install(org, APP)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    url = f"/apps/{org}/{APP}/"

    deadline = time.monotonic() + 120  # a hang guard
    slot = None
    while slot is None or not (slot.data_dir / "hook-running").exists():
        assert time.monotonic() < deadline, platform.http.get(f"/api/v1/jobs/{job_id}").text
        time.sleep(0.05)
        slot = platform.platform.supervisor.lookup(org, APP)
    # Deployed, running, healthy, its install hook running: not reachable yet.
    early = platform.http.get(url)
    assert early.status_code == 503, early.text
    assert "being installed" in early.json()["problems"][0]["reason"]

    (slot.data_dir / "go").write_text("1")
    job = platform.wait(job_id)
    events = platform.http.get(f"/api/v1/jobs/{job_id}/events").text
    assert job["state"] == "succeeded", [e for e in events.splitlines() if "fail" in e]
    live = platform.http.get(url)
    assert live.status_code == 200 and live.text == "ok"
