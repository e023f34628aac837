"""The supervisor on a real driver: deploy, crash loop, hibernation, wake, logs, update,
uninstall, and re-adopting sandboxes across a real ``apprt serve`` restart."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from apprt.db.engine import make_engine, session_factory, session_scope
from apprt.errors import ApprtError
from apprt.runtime.lifecycle import State
from apprt.runtime.models import Instance, Transition
from apprt.runtime.supervisor import AlreadyDeployedError, DeploySpec, StartFailedError
from tests._serve import ServeProcess, environment, reserved_port
from tests.runtime._platform import (
    ECHO,
    ECHO_ID,
    Platform,
    available_drivers,
    kill_recorded,
    platform_settings,
    running_platform,
)

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("supervisor"), instance_log_max_bytes=4096
    ) as platform:
        yield platform


def _history(platform: Platform, instance_id: str) -> list[tuple[str | None, str, str]]:
    with session_scope(platform.app.state.session_factory) as session:
        rows = session.scalars(
            select(Transition).where(Transition.instance_id == instance_id).order_by(Transition.id)
        )
        return [(r.from_state and r.from_state.value, r.to_state.value, r.reason) for r in rows]


def _row(platform: Platform, instance_id: str) -> Instance:
    with session_scope(platform.app.state.session_factory) as session:
        row = session.get(Instance, instance_id)
        assert row is not None
        return row


def test_deploy_activate_and_history(platform: Platform) -> None:
    org = platform.org("deploy")
    info = platform.deploy(org, activate=False)
    assert info.state is State.INSTALLED and info.pid is None and info.orgs == [org]
    again = platform.deploy(org, activate=False)  # idempotent
    assert again.id == info.id

    running = platform.run(platform.supervisor.activate(org, ECHO_ID))
    assert running.state is State.RUNNING and running.pid
    with platform.client() as client:
        assert client.get(f"/apps/{org}/{ECHO_ID}/pid").status_code == 200
    assert [(f, t) for f, t, _ in _history(platform, info.id)] == [
        (None, "installed"),
        ("installed", "loading"),
        ("loading", "running"),
    ]
    row = _row(platform, info.id)
    assert row.handle is not None and row.handle["pid"] == running.pid  # persisted handle

    with pytest.raises(AlreadyDeployedError):
        platform.deploy(org, version="2.0.0", activate=False)

    with platform.client() as client:
        state = client.get(f"/api/v1/runtime/apps/{org}/{ECHO_ID}")
        assert state.status_code == 200
        body = state.json()
        assert body["state"] == "running" and len(body["history"]) == 3


def test_crash_restarts_with_backoff_then_crash_loop_ends_failed_with_logs(
    tmp_path: Path,
) -> None:
    # Its own platform, with backoffs (0.25 s, doubling) well above how much the time a
    # start takes varies on a loaded machine: the gaps between crashes are both.
    with running_platform(tmp_path, restart_backoff_s=0.25, restart_backoff_max_s=2) as platform:
        _crash_loop(platform)


def _crash_loop(platform: Platform) -> None:
    org = platform.org("crashy")
    info = platform.deploy(org)
    first_pid = info.pid
    slot = platform.supervisor.get_instance(info.id)

    # One crash: restarted, serving again with a new process.
    with platform.client() as client:
        crash = client.get(f"/apps/{org}/{ECHO_ID}/crash")
        assert crash.status_code == 502  # the app cut the connection
        assert crash.headers["content-type"] == PROBLEM_JSON
        platform.wait_for(
            lambda: slot.state is State.RUNNING and slot.handle and slot.handle.pid != first_pid,
            what="a restart after the crash",
        )
        assert client.get(f"/apps/{org}/{ECHO_ID}/healthz").status_code == 200

    # Now it crashes at every start: backoff between attempts, then Failed.
    (slot.data_dir / "crash-on-start").write_text("1")
    with platform.client() as client:
        assert client.get(f"/apps/{org}/{ECHO_ID}/crash").status_code == 502
    platform.wait_for(lambda: slot.state is State.FAILED, what="Failed")

    row = _row(platform, info.id)
    crashes = row.recent_crashes
    assert len(crashes) == platform.settings.crash_loop_count
    gaps = [b - a for a, b in itertools.pairwise(crashes)]
    # Waits of 0.25, 0.5, 1 and 2 s (+ a start each) between the crashes: growing.
    backoff = platform.settings.restart_backoff_s
    assert gaps[-1] > gaps[-2] >= 2 * backoff
    assert row.failure_log is not None and "crash-on-start is set" in row.failure_log
    assert row.handle is None and row.last_exit is not None
    history = _history(platform, info.id)
    assert history[-1][1] == "failed" and "crash loop" in history[-1][2]
    assert any(f == "running" and t == "loading" and "restart" in why for f, t, why in history)

    # A Failed app answers 503 problem+json with the reason, and activate refuses.
    with platform.client() as client:
        response = client.get(f"/apps/{org}/{ECHO_ID}/healthz")
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "failed" in response.json()["detail"]
    with pytest.raises(StartFailedError) as caught:
        platform.run(platform.supervisor.activate(org, ECHO_ID))
    assert "crash-on-start" in str(caught.value)

    # The logs are kept and readable through the API.
    with platform.client() as client:
        logs = client.get(f"/api/v1/runtime/apps/{org}/{ECHO_ID}/logs", params={"tail": 50})
        assert logs.status_code == 200 and "crash-on-start is set" in logs.text

    # Fixed: a manual restart brings it back.
    (slot.data_dir / "crash-on-start").unlink()
    restarted = platform.run(platform.supervisor.restart(org, ECHO_ID))
    assert restarted.state is State.RUNNING
    assert _history(platform, info.id)[-2][:2] == ("failed", "loading")


def test_idle_instance_is_suspended_and_a_request_wakes_it(platform: Platform) -> None:
    org = platform.org("sleepy")
    info = platform.deploy(org)
    slot = platform.supervisor.get_instance(info.id)
    with platform.client() as client:
        boot = client.get(f"/apps/{org}/{ECHO_ID}/pid").json()["boot"]
    platform.run(platform.supervisor.set_idle_policy(org, ECHO_ID, 0.3))
    assert platform.supervisor.idle_timeout(slot) == 0.3
    platform.wait_for(lambda: slot.state is State.SUSPENDED, what="idle suspension")
    assert slot.handle is None
    platform.wait_for(lambda: not _pid_alive(info.pid), what="the process to stop")

    metrics = platform.app.state.metrics
    before = metrics.cold_starts.labels(org, ECHO_ID, "wake")._value.get()
    with platform.client() as client:
        response = client.get(f"/apps/{org}/{ECHO_ID}/pid")
    assert response.status_code == 200
    assert response.json()["boot"] != boot  # a new process
    assert metrics.cold_starts.labels(org, ECHO_ID, "wake")._value.get() == before + 1
    history = _history(platform, info.id)
    assert [(f, t) for f, t, _ in history[-3:]] == [
        ("running", "suspended"),
        ("suspended", "loading"),
        ("loading", "running"),
    ]
    assert "idle" in history[-3][2]
    platform.run(platform.supervisor.set_idle_policy(org, ECHO_ID, None))


def test_concurrent_requests_during_a_wake_share_one_start(platform: Platform) -> None:
    org = platform.org("herd")
    info = platform.deploy(org, max_concurrency=64)
    platform.run(platform.supervisor.suspend(org, ECHO_ID))
    transitions_before = len(_history(platform, info.id))

    def call(_: int) -> tuple[int, int]:
        with httpx.Client(base_url=platform.url, headers=platform.headers, timeout=30) as c:
            r = c.get(f"/apps/{org}/{ECHO_ID}/pid")
            return r.status_code, r.json()["boot"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(16)))
    assert {status for status, _ in results} == {200}
    assert len({boot for _, boot in results}) == 1  # one process served them all
    woke = _history(platform, info.id)[transitions_before:]
    assert [(f, t) for f, t, _ in woke] == [("suspended", "loading"), ("loading", "running")]


def test_idle_timeout_precedence(platform: Platform) -> None:
    supervisor = platform.supervisor
    org = platform.org("policies")
    info = platform.deploy(org, activate=False)
    slot = supervisor.get_instance(info.id)
    assert supervisor.idle_timeout(slot) == platform.settings.idle_timeout_s
    platform.run(supervisor.set_idle_policy(org, "", 40))
    assert supervisor.idle_timeout(slot) == 40  # the org's
    platform.run(supervisor.set_idle_policy("", ECHO_ID, 30))
    assert supervisor.idle_timeout(slot) == 30  # the app's beats the org's
    platform.run(supervisor.set_idle_policy(org, ECHO_ID, 20))
    assert supervisor.idle_timeout(slot) == 20  # this app in this org beats both
    for key in ((org, ""), ("", ECHO_ID), (org, ECHO_ID)):
        platform.run(supervisor.set_idle_policy(*key, None))
    assert supervisor.idle_timeout(slot) == platform.settings.idle_timeout_s


def test_logs_are_captured_rotated_and_bounded(platform: Platform, apprt: object) -> None:
    org = platform.org("chatty")
    info = platform.deploy(org)
    slot = platform.supervisor.get_instance(info.id)
    settings = platform.settings
    with platform.client() as client:
        for i in range(120):
            assert (
                client.get(
                    f"/apps/{org}/{ECHO_ID}/print", params={"msg": f"line-{i:03d}-" + "x" * 60}
                ).status_code
                == 200
            )
            # Rotation runs on the watch tick; let a late tick (a loaded machine) catch
            # up, so "what one tick lets through" stays one line, whatever the load.
            platform.wait_for(
                lambda: slot.log.size() <= settings.instance_log_max_bytes + 512,
                what="the watch tick to rotate the log",
            )
    platform.wait_for(lambda: slot.log.generation(1).exists(), what="a rotation")
    files = slot.log.files()
    assert len(files) <= settings.instance_log_generations + 1
    # Each file is capped (plus what one watch tick lets through).
    assert all(f.stat().st_size <= settings.instance_log_max_bytes + 2048 for f in files)
    lines = slot.log.tail(3)
    assert lines[-1].startswith("line-119-")

    # `apprt logs ORG APP --tail N` reads them through the API.
    from typing import Any

    run: Any = apprt
    result = run(
        "logs", org, ECHO_ID, "--tail", "2", "--url", platform.url, "--token", platform.token
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("line-119-")
    as_json = run(
        "logs",
        org,
        ECHO_ID,
        "--tail",
        "2",
        "--json",
        "--url",
        platform.url,
        "--token",
        platform.token,
    )
    assert as_json.exit_code == 0 and len(as_json.json()["lines"]) == 2
    state = run(
        "runtime", "state", org, ECHO_ID, "--json", "--url", platform.url, "--token", platform.token
    )
    assert state.exit_code == 0 and state.json()["state"] == "running"
    missing = run("logs", org, "com.test.nothing", "--url", platform.url, "--token", platform.token)
    assert missing.exit_code == 1 and "is deployed for organization" in missing.stderr


def test_follow_streams_new_lines(platform: Platform) -> None:
    org = platform.org("follow")
    platform.deploy(org)
    with (
        platform.client() as client,
        client.stream(
            "GET", f"/api/v1/runtime/apps/{org}/{ECHO_ID}/logs", params={"tail": 0, "follow": True}
        ) as stream,
    ):
        assert stream.status_code == 200
        with httpx.Client(base_url=platform.url, headers=platform.headers, timeout=30) as other:
            other.get(f"/apps/{org}/{ECHO_ID}/print", params={"msg": "followed-line"})
        seen = ""
        for text in stream.iter_text():
            seen += text
            if "followed-line" in seen:
                break
    assert "followed-line" in seen


def test_update_swaps_the_version_and_uninstall_removes_it(platform: Platform) -> None:
    org = platform.org("updates")
    info = platform.deploy(org)
    v2 = platform.settings.data_dir.parent / "code" / "echo-2.0.0"
    shutil.copytree(ECHO, v2)
    spec = DeploySpec(
        app_id=ECHO_ID,
        version="2.0.0",
        code_dir=v2,
        entry="echo_app.main:app",
        org=org,
        trusted=True,
    )
    updated = platform.run(platform.supervisor.update(org, ECHO_ID, spec))
    assert updated.state is State.RUNNING and updated.version == "2.0.0"
    assert updated.pid != info.pid
    platform.wait_for(lambda: not _pid_alive(info.pid), what="the old version to stop")
    assert [(f, t) for f, t, _ in _history(platform, info.id)][-2:] == [
        ("running", "updating"),
        ("updating", "running"),
    ]

    # A version that does not start: the old one keeps serving.
    broken = platform.settings.data_dir.parent / "code" / "echo-3.0.0"
    shutil.copytree(ECHO, broken)
    bad = DeploySpec(
        app_id=ECHO_ID,
        version="3.0.0",
        code_dir=broken,
        entry="no_such_module:app",
        org=org,
        trusted=True,
    )
    with pytest.raises(StartFailedError):
        platform.run(platform.supervisor.update(org, ECHO_ID, bad))
    back = platform.supervisor.get(org, ECHO_ID)
    assert back.version == "2.0.0" and back.state is State.RUNNING
    assert "back on 2.0.0" in _history(platform, info.id)[-1][2]
    with platform.client() as client:
        assert client.get(f"/apps/{org}/{ECHO_ID}/pid").status_code == 200

    gone = platform.run(platform.supervisor.uninstall(org, ECHO_ID))
    assert gone.state is State.UNINSTALLING
    assert not _pid_alive(back.pid)
    with platform.client() as client:
        assert client.get(f"/apps/{org}/{ECHO_ID}/pid").status_code == 404
    assert _row(platform, info.id).removed_at is not None
    with pytest.raises(ApprtError):
        platform.run(platform.supervisor.activate(org, ECHO_ID))


def test_shared_tenancy_one_instance_for_many_orgs(platform: Platform) -> None:
    from apprt.manifest import Tenancy

    a, b = platform.org("shared-a"), platform.org("shared-b")
    first = platform.deploy(a, app_id="com.test.shared", tenancy=Tenancy.shared)
    second = platform.deploy(b, app_id="com.test.shared", tenancy=Tenancy.shared)
    assert first.id == second.id and second.orgs == [a, b] and second.org is None
    with platform.client() as client:
        boots = set()
        for org in (a, b):
            echo = client.get(f"/apps/{org}/com.test.shared/echo").json()
            assert dict(map(tuple, echo["headers"]))["x-apprt-org"] == org
            boots.add(echo["boot"])
    assert len(boots) == 1
    platform.run(platform.supervisor.uninstall(a, "com.test.shared"))
    assert platform.supervisor.get(b, "com.test.shared").state is State.RUNNING
    platform.run(platform.supervisor.uninstall(b, "com.test.shared"))
    assert not _pid_alive(first.pid)


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- recover across a real platform restart -------------------------------------------


def _serve(data_dir: Path, port: int, driver: str) -> ServeProcess:
    env = environment(
        {
            "APPRT_RUNTIME_DRIVER": driver,
            "APPRT_IDLE_TIMEOUT_S": "0",
            "APPRT_RUNTIME_WATCH_INTERVAL_S": "0.1",
        },
        inherit_apprt=False,
    )
    server = ServeProcess(data_dir, env=env, port=port, new_session=True)
    try:
        server.wait_healthy()
    except BaseException:
        server.close()
        raise
    return server


@pytest.mark.parametrize("driver", available_drivers())
def test_restarting_apprt_serve_readopts_running_sandboxes(tmp_path: Path, driver: str) -> None:
    """Deploy, serve, restart the platform: the app's process is the same and serves."""
    settings = platform_settings(tmp_path, driver, runtime_stop_on_shutdown=False)
    # Place the app (Installed, with its route) the way the install engine will: in the DB.
    with running_platform(tmp_path, driver, runtime_stop_on_shutdown=False) as setup:
        setup.org("acme")
        setup.deploy("acme", activate=False)
    first = second = None
    try:
        with reserved_port() as port:  # the same port for both platforms
            first = _serve(settings.data_dir, port, driver)
            headers = {"authorization": f"Bearer {settings.admin_token_path.read_text().strip()}"}
            with httpx.Client(base_url=first.url, headers=headers, timeout=30) as client:
                boot = client.get(f"/apps/acme/{ECHO_ID}/pid").json()["boot"]  # woken on access
                pid = client.get(f"/api/v1/runtime/apps/acme/{ECHO_ID}").json()["pid"]
            first.close()
            assert _pid_alive(pid), "the sandbox must outlive the platform"

            second = _serve(settings.data_dir, port, driver)
            with httpx.Client(base_url=second.url, headers=headers, timeout=30) as client:
                assert client.get(f"/apps/acme/{ECHO_ID}/pid").json()["boot"] == boot
                state = client.get(f"/api/v1/runtime/apps/acme/{ECHO_ID}").json()
        assert state["state"] == "running" and state["pid"] == pid
        assert state["restart_count"] == 0
        # No start after the first one: the history ends with that single Running.
        assert [h["to_state"] for h in state["history"]] == ["installed", "loading", "running"]
    finally:
        for server in (first, second):
            if server is not None:
                server.close()
        kill_recorded(settings)
        engine = make_engine(settings)
        try:
            with session_scope(session_factory(engine)) as session:
                pids = [r.handle["pid"] for r in session.scalars(select(Instance)) if r.handle]
        finally:
            engine.dispose()
        for pid in pids:
            for _ in range(100):
                if not _pid_alive(pid):
                    break
                time.sleep(0.02)


def test_runtime_cli_lists_suspends_activates_and_sets_idle_timeouts(
    platform: Platform, apprt: object
) -> None:
    from typing import Any

    run: Any = apprt

    def as_json(result: Any) -> Any:
        # The platform runs in this process: its log lines share the captured stdout.
        text = result.stdout
        starts = [text.find(c) for c in ("\n{", "\n[") if text.find(c) >= 0]
        start = 0 if text[:1] in "{[" else min(starts) + 1
        return json.loads(text[start:])

    org = platform.org("clitest")
    platform.deploy(org)
    conn = ("--url", platform.url, "--token", platform.token)
    listed = run("runtime", "list", "--org", org, "--json", *conn)
    assert listed.exit_code == 0, listed.stderr
    assert [i["state"] for i in as_json(listed)] == ["running"]
    every = run("runtime", "list", *conn)  # every instance: platform admin
    assert every.exit_code == 0, every.stderr
    suspended = run("runtime", "suspend", org, ECHO_ID, "--json", *conn)
    assert suspended.exit_code == 0, suspended.stderr
    assert as_json(suspended)["state"] == "suspended"
    activated = run("runtime", "activate", org, ECHO_ID, *conn)
    assert activated.exit_code == 0, activated.stderr
    assert "running" in activated.stdout
    restarted = run("runtime", "restart", org, ECHO_ID, "--json", *conn)
    assert restarted.exit_code == 0, restarted.stderr
    assert as_json(restarted)["state"] == "running"
    policy = run("runtime", "idle-timeout", "45", "--org", org, "--app", ECHO_ID, *conn)
    assert policy.exit_code == 0, policy.stderr
    assert platform.supervisor.get(org, ECHO_ID).idle_timeout_s == 45
    cleared = run("runtime", "idle-timeout", "0", "--org", org, "--app", ECHO_ID, "--clear", *conn)
    assert cleared.exit_code == 0, cleared.stderr
    assert platform.supervisor.get(org, ECHO_ID).idle_timeout_s == platform.settings.idle_timeout_s

    # A plain member reads the state but may neither read the logs nor stop the app.
    member = platform.member_token(org, "cli-member")
    as_member = ("--url", platform.url, "--token", member)
    state = run("runtime", "state", org, ECHO_ID, *as_member)
    assert state.exit_code == 0, state.stderr
    denied = run("runtime", "suspend", org, ECHO_ID, *as_member)
    assert denied.exit_code == 1 and "admin" in denied.stderr
    assert run("logs", org, ECHO_ID, *as_member).exit_code == 1
