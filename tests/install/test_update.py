"""The install hook and the update job on a real platform (uvicorn, the default sandbox
driver): an app whose versions report themselves, keep a note in their data directory
and a key in the platform's state service, and run install/upgrade hooks in their
sandbox. A failing health check or upgrade hook rolls the update back: the old version
serves again, with its data and its state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apprt.install.update import UPDATE_KIND
from apprt.services import backup
from tests.install.conftest import CliRun, InstallPlatform, make_app

APP = "com.example.upd"
LIB = "com.example.upd-lib"
USER = "com.example.upd-user"

#: One app, every version: GET /version, a note in the data directory, a state key.
VERSIONED_APP = """\
import os
from pathlib import Path

from apprt.sdk import state

VERSION = "{version}"
HEALTH = {health}
DATA = Path(os.environ.get("APPRT_APP_DATA", "."))


async def _reply(send, status, body=b""):
    await send({{"type": "http.response.start", "status": status, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})


async def _body(receive):
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            return body


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            else:
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    path, method = scope["path"], scope["method"]
    if path == "/healthz":
        await _reply(send, HEALTH, b"ok")
    elif path == "/version":
        await _reply(send, 200, VERSION.encode())
    elif path == "/note" and method == "POST":
        (DATA / "note.txt").write_bytes(await _body(receive))
        await _reply(send, 201)
    elif path == "/note":
        note = DATA / "note.txt"
        await _reply(send, 200, note.read_bytes()) if note.exists() else await _reply(send, 404)
    elif path == "/kv" and method == "POST":
        state.put("k", (await _body(receive)).decode())
        await _reply(send, 201)
    elif path == "/kv":
        both = f"{{state.get('k')}}|{{state.get('migrated')}}"
        await _reply(send, 200, both.encode())
    else:
        await _reply(send, 404)
"""

HOOKS = """\
import os
from pathlib import Path

from apprt.sdk import state


def on_install(context):
    (Path(os.environ["APPRT_APP_DATA"]) / "installed.txt").write_text(context["version"])
    return {"installed": context["version"]}


def on_upgrade(context):
    state.put("migrated", context["previous_version"] + "->" + context["version"])
    if "{fail}":
        state.put("k", "clobbered by a broken migration")
        raise ValueError("{fail}")
    return {"from": context["previous_version"]}
"""


def _app(
    root: Path,
    version: str,
    key: Path,
    *,
    health: int = 200,
    fail: str = "",
    permissions: tuple[str, ...] = ("state",),
) -> Path:
    module = "upd"
    extra = (
        '\n[backend.hooks]\ninstall = "upd.hooks:on_install"\nupgrade = "upd.hooks:on_upgrade"\n'
    )
    package = make_app(
        root,
        APP,
        version,
        key=key,
        main=VERSIONED_APP.format(version=version, health=health),
        permissions=list(permissions),
        extra="",
    )
    # make_app builds and signs; add the hooks module and the [backend.hooks] table and
    # build again (the table must sit under [backend], before [frontend]).
    from apprt.package import build_package, load_private_key, sign_package

    source = root / f"{APP}-{version}"
    (source / "backend" / module / "hooks.py").write_text(HOOKS.replace("{fail}", fail))
    toml = (source / "app.toml").read_text()
    toml = toml.replace("\n[frontend]\n", extra + "\n[frontend]\n")
    (source / "app.toml").write_text(toml)
    build_package(source, package)
    sign_package(package, load_private_key(key))
    return package


@pytest.fixture(scope="module")
def published(platform: InstallPlatform, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("update-apps")
    key = platform.packages.private_key
    for package in (
        _app(root, "1.0.0", key),
        _app(root, "1.1.0", key, permissions=("state", "events:publish:upd.changed")),
        _app(root, "1.2.0", key, health=500),
        _app(root, "1.3.0", key, fail="the migration broke"),
        make_app(root, LIB, "1.0.0", key=key, frontend_only=True),
        make_app(root, LIB, "1.1.0", key=key, frontend_only=True),
        make_app(root, LIB, "2.0.0", key=key, frontend_only=True),
        make_app(root, USER, "1.0.0", key=key, frontend_only=True, dependencies={LIB: "^1.0"}),
        make_app(root, USER, "2.0.0", key=key, frontend_only=True, dependencies={LIB: "^2.0"}),
    ):
        platform.publish(package)


def _update(platform: InstallPlatform, org: str, app: str, **body: Any) -> Any:
    return platform.http.post(f"/api/v1/orgs/{org}/apps/{app}/update", json=body)


def _update_and_wait(platform: InstallPlatform, org: str, app: str, **body: Any) -> dict[str, Any]:
    r = _update(platform, org, app, **body)
    assert r.status_code == 202, r.text
    return platform.wait(r.json()["job_id"])


def _events(platform: InstallPlatform, job_id: int) -> str:
    return platform.http.get(f"/api/v1/jobs/{job_id}/events").text


def _serves(platform: InstallPlatform, org: str) -> tuple[str, str, str]:
    base = f"/apps/{org}/{APP}"
    version = platform.http.get(f"{base}/version")
    assert version.status_code == 200, version.text
    return (
        version.text,
        platform.http.get(f"{base}/note").text,
        platform.http.get(f"{base}/kv").text,
    )


def _row(platform: InstallPlatform, org: str) -> dict[str, Any]:
    row: dict[str, Any] = platform.http.get(f"/api/v1/orgs/{org}/installations/{APP}").json()
    return {k: row[k] for k in ("version", "state", "grants", "config", "dependencies")}


def test_install_hook_runs_in_the_sandbox_then_updates_roll_back_or_succeed(
    platform: InstallPlatform, published: None, cli_as: CliRun
) -> None:
    org = platform.org("upd")
    job = platform.install_and_wait(org, APP, range="=1.0.0")
    assert job["state"] == "succeeded", job
    health = next(s for s in job["steps"] if s["name"] == "health")["output"]
    assert health["hooks"] == {APP: "upd.hooks:on_install"}
    assert "install hook upd.hooks:on_install ran" in _events(platform, job["id"])
    base = f"/apps/{org}/{APP}"
    assert platform.http.post(f"{base}/note", content=b"my note").status_code == 201
    assert platform.http.post(f"{base}/kv", content=b"v1 data").status_code == 201
    served = ("1.0.0", "my note", "v1 data|None")
    assert _serves(platform, org) == served
    row = _row(platform, org)
    snapshot = platform.snapshot(org)

    # The new version never becomes healthy: rolled back, the old one serves as before.
    config = platform.app.state.install.config
    timeout, config.health_timeout_s = config.health_timeout_s, 2
    try:
        job = _update_and_wait(platform, org, APP, range="=1.2.0")
    finally:
        config.health_timeout_s = timeout
    assert job["state"] == "rolled_back", job
    assert "was not healthy" in json.dumps(job["error"])
    assert _serves(platform, org) == served
    assert (_row(platform, org), platform.snapshot(org)) == (row, snapshot)

    # The upgrade hook writes the state, then raises: the state comes back from the
    # backup taken before the swap, and the old version serves it.
    job = _update_and_wait(platform, org, APP, range="=1.3.0")
    assert job["state"] == "rolled_back", job
    problem = job["error"][0]
    assert problem["reason"] == (
        "upgrade hook upd.hooks:on_upgrade of com.example.upd 1.3.0 failed: "
        "ValueError: the migration broke"
    ), problem
    assert problem["location"] == "backend.hooks.upgrade"
    assert "state restored from" in _events(platform, job["id"])
    assert _serves(platform, org) == served
    assert (_row(platform, org), platform.snapshot(org)) == (row, snapshot)
    steps = {s["name"]: s["state"] for s in job["steps"]}
    assert steps["hook"] == "compensated" and steps["health"] == "pending"

    # 1.1.0 adds a permission: refused without consent, nothing changed.
    refused = _update(platform, org, APP, range="~1.1.0")
    assert refused.status_code == 403, refused.text
    assert "events:publish:upd.changed" in refused.text and "new since 1.0.0" in refused.text
    preview = platform.http.get(f"/api/v1/orgs/{org}/apps/{APP}/update?range=~1.1.0").json()
    assert (preview["from_version"], preview["version"]) == ("1.0.0", "1.1.0")
    assert [p["permission"] for p in preview["new_permissions"]] == ["events:publish:upd.changed"]

    # With consent, through the CLI: the hook ran with the previous version, the note and
    # the state are still there, the backup is named.
    result = cli_as("update", f"{APP}@~1.1.0", "--org", org, "--accept-permissions", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    done = json.loads(result.stdout[result.stdout.index("\n{\n") :])
    assert done["state"] == "succeeded", done
    assert [s["name"] for s in done["steps"]] == [s.name for s in UPDATE_KIND.steps]
    assert _serves(platform, org) == ("1.1.0", "my note", "v1 data|1.0.0->1.1.0")
    updated = _row(platform, org)
    assert updated["version"] == "1.1.0"
    assert set(updated["grants"]) == {"state", "events:publish:upd.changed"}
    names = [b.name for b in backup.list_backups(org, APP, data_dir=platform.settings.data_dir)]
    assert done["backup"] in names and done["backup"].endswith("-upgrade.json")
    hook = next(s for s in done["steps"] if s["name"] == "hook")["output"]
    assert hook == {"hook": "upd.hooks:on_upgrade", "ran": True}
    # (the old version's tree is released: only 1.1.0's is used by the org now)
    assert len(platform.snapshot(org)["instances"]) == 1

    # Nothing newer in the range: a clear refusal, not a silent success.
    again = cli_as("update", f"{APP}@~1.1.0", "--org", org, "--json")
    assert again.exit_code == 1, again.stdout
    assert "1.1.0 in upd is already the newest version matching '~1.1.0'" in again.stdout


def test_update_refusals_name_the_app_and_the_range(
    platform: InstallPlatform, published: None
) -> None:
    org = platform.org("upd-deps")
    for app in (LIB, USER):
        job = platform.install_and_wait(org, app, range="=1.0.0")
        assert job["state"] == "succeeded", job
    before = platform.snapshot(org)

    # lib 2.0.0 would break user 1.0.0's range; user 2.0.0 needs a lib that is not there.
    r = _update(platform, org, LIB, range="^2.0")
    assert r.status_code == 409, r.text
    assert f"{USER} 1.0.0 needs {LIB} ^1.0" in r.text
    r = _update(platform, org, USER)
    assert r.status_code == 409, r.text
    assert f"needs {LIB} ^2.0, but {org} has {LIB} 1.0.0" in r.text
    assert f"apprt update {LIB}@^2.0" in r.text

    # Bad input: unknown app, not installed, bad range, unknown setting.
    assert _update(platform, org, "com.example.nope").status_code == 404
    assert _update(platform, org, APP).status_code == 404
    r = _update(platform, org, LIB, range="not a range")
    assert r.status_code == 400 and "range" in r.text, r.text
    r = _update(platform, org, LIB, config={"colour": "red"})
    assert r.status_code == 422 and "colour" in r.text, r.text
    assert platform.snapshot(org) == before

    # A frontend-only app within its major: updated, the dependent's range still holds.
    job = _update_and_wait(platform, org, LIB, range="^1.0")
    assert job["state"] == "succeeded", job
    assert platform.snapshot(org)["installations"] == [
        (LIB, "1.1.0", "active"),
        (USER, "1.0.0", "active"),
    ]
    r = _update(platform, org, LIB, range="^1.0")
    assert r.status_code == 409 and "already up to date" in r.text, r.text


def test_an_update_that_cannot_undo_itself_leaves_the_app_visibly_failed(
    platform: InstallPlatform, published: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = platform.org("upd-broken")
    assert platform.install_and_wait(org, APP, range="=1.0.0")["state"] == "succeeded"
    # 1.2.0 fails its health check, and putting 1.0.0 back fails too.
    monkeypatch.setenv("APPRT_FAILPOINTS", "update.swap.compensate=error")
    job = _update_and_wait(platform, org, APP, range="=1.2.0", accept_permissions=True)
    monkeypatch.delenv("APPRT_FAILPOINTS")
    assert job["state"] == "failed", job
    # Not "active 1.0.0" as if nothing happened: the instance may run either version.
    assert _row(platform, org)["state"] == "failed"
    again = _update(platform, org, APP, range="=1.1.0", accept_permissions=True)
    assert again.status_code == 409, again.text
    assert f"job {job['id']} could not undo" in again.json()["problems"][0]["reason"]
    # Uninstalling cleans up, as the refusal's hint says.
    assert platform.uninstall_and_wait(org, APP)["state"] == "succeeded"


SHARED = "com.example.shared-upd"


def _shared_app(root: Path, version: str, key: Path) -> Path:
    from apprt.package import build_package, load_private_key, sign_package

    package = make_app(root, SHARED, version, key=key)
    source = root / f"{SHARED}-{version}"
    toml = (source / "app.toml").read_text()
    (source / "app.toml").write_text(
        toml.replace("permissions = [", 'tenancy = "shared"\npermissions = [', 1)
    )
    build_package(source, package)
    sign_package(package, load_private_key(key))
    return package


def test_a_shared_app_used_by_two_organizations_is_not_updated_for_one(
    platform: InstallPlatform, tmp_path: Path
) -> None:
    key = platform.packages.private_key
    for version in ("1.0.0", "1.1.0"):
        platform.publish(_shared_app(tmp_path, version, key))
    first, second = platform.org("shared-a"), platform.org("shared-b")
    for org in (first, second):
        job = platform.install_and_wait(org, SHARED, range="=1.0.0")
        assert job["state"] == "succeeded", job
    before = platform.snapshot(first)
    job = _update_and_wait(platform, first, SHARED, accept_permissions=True)
    assert job["state"] == "rolled_back", job
    assert "also serves" in str(job["error"]) and second in str(job["error"]), job["error"]
    assert platform.snapshot(first) == before
    assert _row_of(platform, second)["version"] == "1.0.0"


def _row_of(platform: InstallPlatform, org: str) -> dict[str, Any]:
    row: dict[str, Any] = platform.http.get(f"/api/v1/orgs/{org}/installations/{SHARED}").json()
    return row
