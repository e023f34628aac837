"""Crash safety: ``kill -9`` of a real ``apprt serve`` at every step of the install job.

For each of the ten steps, before and after its work (``APPRT_FAILPOINTS=
install.<step>.<before|after>=crash``: the process SIGKILLs itself right there), the
platform is started again on the same data directory. The job must resume (the
interrupted step runs again) and end either succeeded with the organization fully
installed (both apps active, routed, healthy through the gateway) or rolled back with
the organization exactly as before (no rows, routes, instances, unpacked trees,
environments or staging files). The same again for a crash in the middle of a
rollback (a failing health check, then ``kill -9`` while undoing each step in turn).

One data directory with the examples published is made once per module and copied
for every scenario; scenarios run two at a time.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

from apprt.install.steps import INSTALL_KIND
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
from tests.install.conftest import (
    CRM,
    SALES,
    InstallPlatform,
    Packages,
    envs,
    live_sandboxes,
    org_snapshot,
    trees,
)
from tests.runtime._platform import kill_recorded

#: The module's scenarios run in one fixture (two at a time), which the first test
#: waits for: minutes on a loaded 2-core machine. A hang guard, not a time budget.
pytestmark = pytest.mark.timeout(900)

STEPS = [step.name for step in INSTALL_KIND.steps]
#: Steps with a compensation, undone in this order after a failing health check.
UNDONE = ["configure", "deploy", "download", "sandbox", "allocate"]
ORG = "acme"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, packages: Packages) -> Path:
    """A data directory with the examples published and the organization created."""
    root = tmp_path_factory.mktemp("template")
    platform = InstallPlatform(root, packages)
    try:
        platform.publish_examples()
        platform.org(ORG)
    finally:
        platform.close()
    return platform.settings.data_dir


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


def _crash_then_restart(
    tmp_path: Path, template: Path, uv_cache: Path, crashes: list[str], fail: str = ""
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Install sales-dashboard with the failpoints of ``crashes[0]`` (plus ``fail``) set;
    the platform must die there. Restart it with the next crash point set (the job
    resumes and must die there too), and so on; then restart it clean and check the
    outcome: the finished job, the org's snapshot, the job's events."""
    data = tmp_path / "data"
    copy_template(template, data)
    settings = Settings(data_dir=data)
    log = tmp_path / "serve.log"
    before = org_snapshot(settings, ORG)
    before_files = (trees(settings), envs(settings))
    extra = f",{fail}" if fail else ""
    try:
        with serve(data, log, uv_cache, f"{crashes[0]}=crash{extra}") as server:
            job_id = start_and_die(
                server,
                partial(
                    server.http.post,
                    f"/api/v1/orgs/{ORG}/installations",
                    json={"app": SALES, "accept_permissions": True, "config": {"currency": "BRL"}},
                ),
            )
        job_id = job_id or newest_job(settings)
        crash_again(data, log, uv_cache, crashes[1:])
        with serve(data, log, uv_cache) as server:
            job = server.wait_job(job_id)
            events = job_events(server, job_id)
            gateway = server.http.get(f"/apps/{ORG}/{SALES}/api/summary")
            after = org_snapshot(settings, ORG)
            if job["state"] == "rolled_back":
                assert after == before, events
                assert (trees(settings), envs(settings)) == before_files
                assert live_sandboxes(settings) == set()
                assert gateway.status_code == 404
            else:
                assert job["state"] == "succeeded", (job, events)
                assert after["installations"] == [
                    (CRM, "1.2.0", "active"),
                    (SALES, "1.3.0", "active"),
                ]
                assert after["routes"] == [CRM, SALES]
                assert {app for app, _ in after["instances"]} == {CRM, SALES}
                assert after["staging"] == []
                assert len(live_sandboxes(settings)) == 2  # the two apps', nothing else
                assert gateway.status_code == 200, gateway.text
                assert gateway.json()["currency"] == "BRL"
            return job, after, events
    finally:
        kill_recorded(settings)


def _uninstall_crashes(tmp_path: Path, template: Path, uv_cache: Path) -> Outcome:
    """Install crm-connector, write data, uninstall it with the platform killed after
    stopping traffic, after the export and before the removal, restarting each time."""
    data = tmp_path / "data"
    copy_template(template, data)
    settings = Settings(data_dir=data)
    log = tmp_path / "serve.log"
    before = org_snapshot(settings, ORG)
    points = ["stop_traffic.after", "export.after", "remove.before"]
    try:
        with serve(data, log, uv_cache, f"uninstall.{points[0]}=crash") as server:
            r = server.http.post(
                f"/api/v1/orgs/{ORG}/installations", json={"app": CRM, "accept_permissions": True}
            )
            assert r.status_code == 202, r.text
            assert server.wait_job(r.json()["job_id"])["state"] == "succeeded"
            job_id = start_and_die(
                server,
                partial(server.http.delete, f"/api/v1/orgs/{ORG}/installations/{CRM}"),
            )
        job_id = job_id or newest_job(settings)
        crash_again(data, log, uv_cache, [f"uninstall.{point}" for point in points[1:]])
        with serve(data, log, uv_cache) as server:
            job = server.wait_job(job_id)
            events = job_events(server, job_id)
            after = org_snapshot(settings, ORG)
            assert job["state"] == "succeeded", (job, events)
            assert after == before
            assert server.http.get(f"/apps/{ORG}/{CRM}/healthz").status_code == 404
            return job, after, events
    finally:
        kill_recorded(settings)


#: Each scenario: the crash points, in order, and a failpoint making the job fail.
SCENARIOS: dict[str, tuple[list[str], str]] = {
    step: ([f"install.{step}.before", f"install.{step}.after"], "") for step in STEPS
}
SCENARIOS["rollback"] = (
    [f"install.{step}.compensate" for step in UNDONE],
    "install.health.before=error",
)
#: Scenarios run two at a time (each its own data directory, server and sandboxes):
#: starting ``apprt serve`` is mostly single-threaded imports.
WORKERS = 2

Outcome = tuple[dict[str, Any], dict[str, Any], str]


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, template: Path, uv_cache: Path
) -> dict[str, Outcome | BaseException]:
    scenarios = {
        name: partial(
            _crash_then_restart,
            tmp_path_factory.mktemp(f"crash-{name}"),
            template,
            uv_cache,
            crashes,
            fail,
        )
        for name, (crashes, fail) in SCENARIOS.items()
    }
    scenarios["uninstall"] = partial(
        _uninstall_crashes, tmp_path_factory.mktemp("crash-uninstall"), template, uv_cache
    )
    return run_scenarios(WORKERS, scenarios)


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_before_and_after_every_step_then_restart(
    step: str, outcomes: dict[str, Outcome | BaseException]
) -> None:
    """Killed before the step's work, restarted; killed again right after it (the work
    done, not yet recorded), restarted: the install completes, fully."""
    job, _after, events = outcome(outcomes, step)
    assert job["state"] == "succeeded"
    assert events.count("resumed after an interruption") == 2
    row = next(s for s in job["steps"] if s["name"] == step)
    assert row["attempts"] == 3, job  # started, resumed (then killed), resumed


def test_kill_9_while_rolling_back_then_restart(
    outcomes: dict[str, Outcome | BaseException],
) -> None:
    """The health check fails; the platform is killed while undoing each step in turn
    (configure, deploy, download, sandbox, allocate), restarted every time: the
    rollback goes on where it was and the organization ends exactly as it was."""
    job, after, events = outcome(outcomes, "rollback")
    assert job["state"] == "rolled_back", events
    assert after["installations"] == [] and after["instances"] == []
    assert all(s["state"] in ("compensated", "pending") for s in job["steps"]), job["steps"]
    assert events.count("undoing: Runtime deployment") == 2  # killed once, done once


def test_kill_9_during_uninstall_then_restart(
    outcomes: dict[str, Outcome | BaseException],
) -> None:
    """Killed after traffic stopped, after the export, before the removal: the
    uninstall completes, one archive of the data is kept, the org is as before."""
    job, _after, events = outcome(outcomes, "uninstall")
    assert job["state"] == "succeeded"
    assert events.count("resumed after an interruption") == 3
    export = next(s for s in job["steps"] if s["name"] == "export")
    archive = Path(export["output"]["archive"])
    assert archive.is_file() and len(list(archive.parent.iterdir())) == 1
