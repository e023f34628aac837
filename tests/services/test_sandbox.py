"""End to end on the real sandbox driver (bwrap): apps import apprt.sdk inside the sandbox
and keep their state through platform.sock. Team Notes (shared tenancy) serves two
organizations from one sandbox; each sees only its own notes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprt.db.engine import session_scope
from apprt.manifest import load_manifest
from apprt.runtime.supervisor import DeploySpec
from apprt.services import state
from tests.runtime._platform import Platform, running_platform
from tests.services._apps import call, deploy, make_app, socket_of

EXAMPLES = Path(__file__).parents[2] / "examples"
NOTES = "com.example.team-notes"

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("services-bwrap")
    with running_platform(root, "bwrap") as platform:
        for org in ("alpha", "beta"):
            platform.org(org)
        code = root / "code" / "team-notes"
        shutil.copytree(EXAMPLES / "team-notes", code)
        manifest = load_manifest(code)
        for org in ("alpha", "beta"):
            spec = DeploySpec.from_manifest(
                manifest, code, org=org, grants=["state", "identity:read"]
            )
            platform.run(platform.supervisor.deploy(spec))
        platform.run(platform.supervisor.activate("alpha", NOTES))
        yield platform


def test_team_notes_keeps_each_organizations_notes_in_the_state_service(
    platform: Platform,
) -> None:
    slot = platform.supervisor.lookup("alpha", NOTES)
    assert slot is not None and slot.handle is not None and slot.handle.driver == "bwrap"
    assert int(slot.handle.state["uid"]) != 0  # a sandbox user, not the platform's
    with platform.client() as client:
        for org, text in [("alpha", "first"), ("beta", "hello beta"), ("alpha", "second")]:
            response = client.post(f"/apps/{org}/{NOTES}/api/notes", json={"text": text})
            assert response.status_code == 201, response.text
        alpha = client.get(f"/apps/alpha/{NOTES}/api/notes").json()["notes"]
        beta = client.get(f"/apps/beta/{NOTES}/api/notes").json()["notes"]
        too_long = client.post(f"/apps/alpha/{NOTES}/api/notes", json={"text": "x" * 2001})
    assert alpha == [
        {"id": "1", "author": "admin", "text": "first"},
        {"id": "2", "author": "admin", "text": "second"},
    ]
    assert beta == [{"id": "1", "author": "admin", "text": "hello beta"}]
    assert too_long.status_code == 400
    assert platform.supervisor.get("beta", NOTES).id == slot.id  # one sandbox for both

    with session_scope(platform.app.state.session_factory) as session:
        stored = state.export_state(session, "alpha", NOTES)
    assert [e["key"] for e in stored["entries"]] == [
        "notes-seq",
        "notes/0000000001",
        "notes/0000000002",
    ]
    with platform.client() as client:
        events = client.get("/api/v1/orgs/beta/audit", params={"app": NOTES}).json()["events"]
    assert {(e["operation"], e["user"], e["outcome"]) for e in events} >= {
        ("state.increment", "admin", "ok"),
        ("state.put", "admin", "ok"),
        ("state.list", "admin", "ok"),
    }
    assert {e["instance_id"] for e in events} == {slot.id}


def test_an_isolated_app_in_the_sandbox(platform: Platform, tmp_path: Path) -> None:
    platform.org("gamma")
    deploy(platform, make_app(tmp_path, "com.test.probe"), "gamma", grants=["state"])
    with platform.client() as client:
        startup = client.get("/apps/gamma/com.test.probe/startup").json()
    assert startup["org"] == "gamma" and startup["permissions"] == ["state"]
    assert call(platform, "gamma", "com.test.probe", "increment", "n", 41)["result"] == 41
    assert call(platform, "gamma", "com.test.probe", "increment", "n", sync=True)["result"] == 42
    assert call(platform, "gamma", "com.test.probe", "get", "n")["result"] == 42
    assert socket_of(platform, "gamma", "com.test.probe").is_socket()
