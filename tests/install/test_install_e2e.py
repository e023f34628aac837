"""End to end on a real platform (uvicorn, the default sandbox driver): the examples
published through the registry's API, installed with the CLI, reached through the
gateway, uninstalled with their data retained, and reinstalled with it restored."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from apprt.db.engine import session_scope
from apprt.install import retention
from apprt.services import state
from tests.install.conftest import (
    CRM,
    NOTES,
    SALES,
    CliRun,
    ExtraApps,
    InstallPlatform,
    envs,
    trees,
)


def test_cli_installs_sales_dashboard_after_crm_connector_and_it_answers(
    platform: InstallPlatform, cli_as: CliRun
) -> None:
    org = platform.org("acme")
    consent = platform.http.get(f"/api/v1/orgs/{org}/installations/{SALES}/consent").json()
    assert [p["app_id"] for p in consent["plan"]] == [CRM, SALES]  # dependency first
    assert consent["config_defaults"] == {"currency": "USD", "pipeline_days": 90}
    asked = {p["permission"] for item in consent["permissions"] for p in item["permissions"]}
    assert asked == {"state", "tools:call:crm.*", "events:publish:sales.updated"}

    result = cli_as(
        "install", SALES, "--org", org, "--accept-permissions",
        "--config", "currency=EUR", "--config", "pipeline_days=30",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    for title in ("Package resolution", "Sandbox creation", "Health check", "Activation"):
        assert title in out
    assert "against the registry's TUF metadata" in out and "install order: " + CRM in out
    assert f"{platform.url}/apps/{org}/{SALES}/" in out

    # Through the gateway, with the organization's settings.
    summary = platform.http.get(f"/apps/{org}/{SALES}/api/summary").json()
    assert (summary["organization"], summary["currency"], summary["pipeline_days"]) == (
        org,
        "EUR",
        30,
    )
    deals = platform.http.post(f"/apps/{org}/{CRM}/tools/list-deals", json={"limit": 1})
    assert deals.status_code == 200 and len(deals.json()["result"]) == 1

    listed = cli_as("apps", "list", "--org", org, "--json").json()
    assert [(a["app_id"], a["state"], a["health"], a["requested"]) for a in listed] == [
        (CRM, "active", "ok", False),
        (SALES, "active", "ok", True),
    ]
    assert cli_as("apps", "list", "--org", org).exit_code == 0
    shown = cli_as("apps", "show", SALES, "--org", org, "--json").json()
    assert shown["config"] == {"currency": "EUR", "pipeline_days": 30}
    assert shown["instance"]["state"] == "running"

    again = cli_as("install", SALES, "--org", org, "--accept-permissions", "--json")
    assert again.exit_code == 1 and "already installed" in again.stdout
    # crm-connector is needed by sales-dashboard: refused, nothing changed.
    refused = cli_as("uninstall", CRM, "--org", org, "--json")
    assert refused.exit_code == 1 and "depends on" in refused.stdout

    # Uninstall both, in order; the shared unpacked trees and environments go with
    # the last user.
    before_trees = trees(platform.settings)
    for app in (SALES, CRM):
        done = cli_as("uninstall", app, "--org", org, "--json")
        assert done.exit_code == 0, done.stdout + done.stderr
        # The platform runs in this process, so its log lines share stdout.
        job = json.loads(done.stdout[done.stdout.index("\n{\n") :])
        hook = next(s for s in job["steps"] if s["name"] == "hook")["output"]
        if app == CRM:  # its uninstall hook ran in its sandbox
            assert hook == {"hook": "crm_connector.hooks:on_uninstall", "ran": True}
        else:
            assert hook == {"hook": None, "ran": False}
    assert platform.snapshot(org)["installations"] == []
    assert platform.http.get(f"/apps/{org}/{SALES}/api/summary").status_code == 404
    assert trees(platform.settings) < before_trees or not before_trees


def test_json_output_and_a_frontend_only_app(
    platform: InstallPlatform, extra_apps: ExtraApps, cli_as: CliRun
) -> None:
    org = platform.org("static")
    result = cli_as("install", extra_apps.static, "--org", org, "--json")
    assert result.exit_code == 0, result.stdout
    job = result.json()
    assert job["state"] == "succeeded" and job["url"].endswith(f"/apps/{org}/{extra_apps.static}/")
    assert [s["state"] for s in job["steps"]] == ["done"] * 10
    row = platform.http.get(f"/api/v1/orgs/{org}/installations/{extra_apps.static}").json()
    assert (row["has_backend"], row["health"], row["instance"]) == (
        False,
        "ok (frontend only)",
        None,
    )
    assert platform.snapshot(org)["instances"] == []
    assert cli_as("uninstall", extra_apps.static, "--org", org).exit_code == 0


def test_shared_tenancy_one_instance_many_orgs(platform: InstallPlatform) -> None:
    first, second = platform.org("shared-a"), platform.org("shared-b")
    for org in (first, second):
        job = platform.install_and_wait(org, NOTES)
        assert job["state"] == "succeeded", job["error"]
    a = platform.http.get(f"/api/v1/orgs/{first}/installations/{NOTES}").json()["instance"]
    b = platform.http.get(f"/api/v1/orgs/{second}/installations/{NOTES}").json()["instance"]
    assert a["id"] == b["id"] and set(a["orgs"]) >= {first, second}
    for org in (first, second):
        r = platform.http.post(f"/apps/{org}/{NOTES}/api/notes", json={"text": f"hi from {org}"})
        assert r.status_code == 201, r.text
    notes = platform.http.get(f"/apps/{first}/{NOTES}/api/notes").json()["notes"]
    assert [n["text"] for n in notes] == [f"hi from {first}"]  # each org sees its own
    # Uninstalling from one organization leaves the instance serving the other.
    assert platform.uninstall_and_wait(first, NOTES)["state"] == "succeeded"
    assert platform.http.get(f"/apps/{first}/{NOTES}/api/notes").status_code == 404
    assert platform.http.get(f"/apps/{second}/{NOTES}/api/notes").status_code == 200
    assert platform.uninstall_and_wait(second, NOTES)["state"] == "succeeded"


def test_uninstall_keeps_the_data_and_reinstall_restores_it(
    platform: InstallPlatform, extra_apps: ExtraApps, cli_as: CliRun
) -> None:
    org, app = platform.org("notebook"), extra_apps.notebook
    assert platform.install_and_wait(org, app)["state"] == "succeeded"
    written = platform.http.post(f"/apps/{org}/{app}/note", content=b"remember the milk")
    assert written.status_code == 201
    # Its key-value state in the org (what apps write through apprt.sdk), beside the files.
    sessions = platform.app.state.session_factory
    with session_scope(sessions) as session:
        quota = state.Quota(max_bytes=1 << 20, max_keys=100)
        state.put(session, org, app, "views/default", {"columns": 3}, quota=quota)

    done = cli_as("uninstall", app, "--org", org, "--json")
    assert done.exit_code == 0, done.stdout
    archives = retention.archives(platform.settings.data_dir / "retained", org, app)
    assert len(archives) == 1
    archive = archives[0][1]
    assert archive.parent == platform.settings.data_dir / "retained" / org / app
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        note = tar.extractfile("data/note.txt")
        assert note is not None and note.read() == b"remember the milk"
    assert "meta.json" in names and "state.json" in names
    with session_scope(sessions) as session:
        assert state.get(session, org, app, "views/default") is None  # removed with the app
    assert platform.http.get(f"/apps/{org}/{app}/note").status_code == 404
    assert platform.snapshot(org)["instances"] == []

    again = platform.install_and_wait(org, app)
    assert again["state"] == "succeeded"
    assert platform.http.get(f"/apps/{org}/{app}/note").content == b"remember the milk"
    row = platform.http.get(f"/api/v1/orgs/{org}/installations/{app}").json()
    assert row["restored_from"] == str(archive)
    with session_scope(sessions) as session:
        restored = state.get(session, org, app, "views/default")
        assert restored is not None and restored.value == {"columns": 3}

    # --purge keeps nothing; --fresh starts empty.
    assert cli_as("uninstall", app, "--org", org, "--purge").exit_code == 0
    assert len(retention.archives(platform.settings.data_dir / "retained", org, app)) == 1
    fresh = cli_as("install", app, "--org", org, "--accept-permissions", "--fresh")
    assert fresh.exit_code == 0, fresh.stdout
    assert platform.http.get(f"/apps/{org}/{app}/note").status_code == 404
    assert platform.uninstall_and_wait(org, app, keep_data="false")["state"] == "succeeded"


def test_expired_archives_are_pruned(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    root = tmp_path / "retained"
    old = retention.export(
        root, org="o", app_id="a", version="1.0.0", data=None, state=None,
        when=datetime.now(UTC) - timedelta(days=31),
    )  # fmt: skip
    new = retention.export(root, org="o", app_id="a", version="1.0.0", data=None, state=None)
    assert retention.newest(root, "o", "a", 30) == new
    assert retention.prune(root, 30) == [old]
    assert not old.exists() and new.exists()
    assert retention.prune(root, 0) == [new] and not (root / "o").exists()


def test_nothing_is_left_in_staging_or_unused(platform: InstallPlatform) -> None:
    """After the module's installs and uninstalls: no staging directory, and every
    unpacked tree or environment left belongs to an installation."""
    staging = platform.settings.data_dir / "install" / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    rows = platform.http.get("/api/v1/orgs").json()
    installed = [
        i
        for org in rows
        for i in platform.http.get(f"/api/v1/orgs/{org['slug']}/installations").json()
    ]
    assert len(trees(platform.settings)) <= len({i["app_id"] for i in installed})
    assert len(envs(platform.settings)) <= len(installed)
