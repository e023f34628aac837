"""Crash safety of the update job: ``kill -9`` of a real ``apprt serve`` in the middle of
an update, forward and while rolling back (``APPRT_FAILPOINTS=update.<step>.<point>=
crash``), restarted each time on the same data directory (the pattern of
``test_crash.py``).

* forward: killed right after the swap and right after the upgrade hook (the work done,
  not yet recorded); the job resumes, runs those steps again (the hook is called at
  least once) and the app ends on the new version with its data and state;
* rollback: the health check fails, then the platform is killed while undoing the
  upgrade hook and the swap; the rollback goes on where it was and the old version
  serves again, with its data and its state as before the update.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from apprt.settings import Settings
from tests.install._crash import (
    copy_template,
    crash_again,
    job_events,
    newest_job,
    outcome,
    run_scenarios,
    serve,
    start_and_die,
)
from tests.install.conftest import InstallPlatform, Packages, org_snapshot
from tests.install.test_update import APP, _app
from tests.runtime._platform import kill_recorded

ORG = "acme"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, packages: Packages) -> Path:
    """A data directory with two versions of the test app published and the org made."""
    root = tmp_path_factory.mktemp("update-template")
    platform = InstallPlatform(root, packages)
    try:
        apps = root / "apps"
        key = packages.private_key
        platform.publish(_app(apps, "1.0.0", key))
        platform.publish(_app(apps, "1.1.0", key))
        platform.org(ORG)
    finally:
        platform.close()
    return platform.settings.data_dir


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


def _served(http: httpx.Client) -> tuple[str, str, str]:
    base = f"/apps/{ORG}/{APP}"
    version, note, kv = (http.get(f"{base}/{what}").text for what in ("version", "note", "kv"))
    return version, note, kv


def _update_with_crashes(
    tmp_path: Path, template: Path, uv_cache: Path, crashes: list[str], fail: str = ""
) -> tuple[dict[str, Any], str, tuple[str, str, str], dict[str, Any], dict[str, Any]]:
    """Install 1.0.0, write a note and a state key, update to 1.1.0 with the failpoints of
    ``crashes[0]`` (plus ``fail``): the platform dies there; restarted with each next
    crash point, it dies again; restarted clean, the job ends. The job, its events,
    what the app serves then, and the org's snapshot before and after."""
    data = tmp_path / "data"
    copy_template(template, data)
    settings = Settings(data_dir=data)
    log = tmp_path / "serve.log"
    extra = f",{fail}" if fail else ""
    try:
        with serve(data, log, uv_cache, f"{crashes[0]}=crash{extra}") as server:
            r = server.http.post(
                f"/api/v1/orgs/{ORG}/installations",
                json={"app": APP, "range": "=1.0.0", "accept_permissions": True},
            )
            assert r.status_code == 202, r.text
            assert server.wait_job(r.json()["job_id"])["state"] == "succeeded"
            base = f"/apps/{ORG}/{APP}"
            assert server.http.post(f"{base}/note", content=b"my note").status_code == 201
            assert server.http.post(f"{base}/kv", content=b"v1 data").status_code == 201
            before = org_snapshot(settings, ORG)
            job_id = start_and_die(
                server, partial(server.http.post, f"/api/v1/orgs/{ORG}/apps/{APP}/update", json={})
            )
        job_id = job_id or newest_job(settings)
        crash_again(data, log, uv_cache, crashes[1:])
        with serve(data, log, uv_cache) as server:
            job = server.wait_job(job_id)
            events = job_events(server, job_id)
            served = _served(server.http)
            after = org_snapshot(settings, ORG)
        return job, events, served, before, after
    finally:
        kill_recorded(settings)


SCENARIOS: dict[str, tuple[list[str], str]] = {
    "forward": (["update.swap.after", "update.hook.after"], ""),
    "rollback": (
        ["update.hook.compensate", "update.swap.compensate"],
        "update.health.before=error",
    ),
}


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, template: Path, uv_cache: Path
) -> dict[str, Any]:
    scenarios = {
        name: partial(
            _update_with_crashes,
            tmp_path_factory.mktemp(f"update-crash-{name}"),
            template,
            uv_cache,
            crashes,
            fail,
        )
        for name, (crashes, fail) in SCENARIOS.items()
    }
    return run_scenarios(len(SCENARIOS), scenarios)


def test_kill_9_after_the_swap_and_after_the_hook_then_restart(outcomes: dict[str, Any]) -> None:
    job, events, served, before, after = outcome(outcomes, "forward")
    assert job["state"] == "succeeded", events
    assert events.count("resumed after an interruption") == 2
    attempts = {s["name"]: s["attempts"] for s in job["steps"]}
    assert attempts["swap"] == 2 and attempts["hook"] == 2, attempts  # at least once
    assert served == ("1.1.0", "my note", "v1 data|1.0.0->1.1.0")
    assert after["installations"] == [(APP, "1.1.0", "active")]
    assert after["routes"] == before["routes"] and after["staging"] == []


def test_kill_9_while_rolling_back_an_update_then_restart(outcomes: dict[str, Any]) -> None:
    job, events, served, before, after = outcome(outcomes, "rollback")
    assert job["state"] == "rolled_back", events
    assert events.count("undoing: Version swap") == 2  # killed once, done once
    assert "state restored from" in events
    assert served == ("1.0.0", "my note", "v1 data|None")
    assert after == before
