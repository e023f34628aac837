from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from apprt.jobs import JobRunner, JobState
from tests.jobs.demo_kind import make_kind


def test_job_state_and_event_stream(
    app_client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    runner: JobRunner = app_client.app.state.jobs  # type: ignore[attr-defined]
    runner.register(make_kind(tmp_path))
    job_id = runner.submit("demo", {}, subject="demo", actor="admin")
    assert runner.wait(job_id, timeout=60) is JobState.SUCCEEDED

    job = app_client.get(f"/api/v1/jobs/{job_id}", headers=admin_headers).json()
    assert job["state"] == "succeeded"
    assert [s["name"] for s in job["steps"]] == ["resolve", "allocate", "deploy", "activate"]

    with app_client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=admin_headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert events[0]["type"] == "job_created" and events[-1]["type"] == "job_succeeded"
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)

    # Reconnecting with Last-Event-ID replays only what came after.
    middle = ids[len(ids) // 2]
    headers = {**admin_headers, "Last-Event-ID": str(middle)}
    with app_client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as r:
        rest = [line for line in r.read().decode().splitlines() if line.startswith("id: ")]
    assert [int(x[4:]) for x in rest] == [i for i in ids if i > middle]


def test_jobs_are_private(
    app_client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    runner: JobRunner = app_client.app.state.jobs  # type: ignore[attr-defined]
    runner.register(make_kind(tmp_path))
    job_id = runner.submit("demo", {}, subject="demo", actor="admin")
    runner.wait(job_id, timeout=60)
    assert (
        app_client.post(
            "/api/v1/users",
            json={"name": "mallory", "password": "a long passphrase"},
            headers=admin_headers,
        ).status_code
        == 201
    )
    token = app_client.post(
        "/api/v1/login", json={"name": "mallory", "password": "a long passphrase"}
    ).json()["token"]
    app_client.cookies.clear()
    other = {"Authorization": f"Bearer {token}"}
    assert app_client.get(f"/api/v1/jobs/{job_id}", headers=other).status_code == 404
    assert app_client.get(f"/api/v1/jobs/{job_id}/events", headers=other).status_code == 404
    assert app_client.get("/api/v1/jobs/999", headers=admin_headers).status_code == 404
