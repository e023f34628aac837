"""Bad input and faults: each gives a clear error (problems: what, where, how to fix)
and leaves the organization exactly as it was (rows, routes, instances, staging) and
the node without orphan unpacked trees or environments."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apprt.install.artifacts import ArtifactStore
from tests.install.conftest import (
    CRM,
    SALES,
    ExtraApps,
    InstallPlatform,
    envs,
    live_sandboxes,
    trees,
)


@contextlib.contextmanager
def unchanged(platform: InstallPlatform, org: str) -> Iterator[None]:
    before = platform.snapshot(org)
    files = (trees(platform.settings), envs(platform.settings))
    running = live_sandboxes(platform.settings)
    yield
    assert platform.snapshot(org) == before
    assert (trees(platform.settings), envs(platform.settings)) == files
    assert live_sandboxes(platform.settings) <= running  # no sandbox left behind


def refused(response: httpx.Response, status: int, *words: str) -> list[dict[str, str]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problems: list[dict[str, str]] = response.json()["problems"]
    assert problems and all(p["reason"] for p in problems)
    text = " ".join(p["reason"] + " " + p["hint"] for p in problems)
    for word in words:
        assert word in text, text
    return problems


def failed_job(platform: InstallPlatform, org: str, app: str, **body: Any) -> dict[str, Any]:
    r = platform.install(org, app, **body)
    assert r.status_code == 202, r.text
    job = platform.wait(r.json()["job_id"])
    assert job["state"] == "rolled_back", job
    assert all(s["state"] in ("compensated", "pending") for s in job["steps"]), job["steps"]
    return job


def test_unknown_app(platform: InstallPlatform) -> None:
    org = platform.org("bad-unknown")
    with unchanged(platform, org):
        problems = refused(platform.install(org, "com.example.nope"), 404, "no app")
    assert "apprt registry search" in problems[0]["hint"]


def test_unknown_version(platform: InstallPlatform) -> None:
    org = platform.org("bad-version")
    with unchanged(platform, org):
        problems = refused(platform.install(org, CRM, range="9.9.9"), 404, "no version 9.9.9")
    assert "1.2.0" in problems[0]["hint"]  # what exists


def test_unsatisfiable_range(platform: InstallPlatform) -> None:
    org = platform.org("bad-range")
    with unchanged(platform, org):
        refused(platform.install(org, CRM, range="^3.0"), 409, "matches '^3.0'", "1.2.0")
        refused(platform.install(org, CRM, range="not a range"), 400, "not a valid version range")


def test_dependency_conflict_explained_by_the_resolver(
    platform: InstallPlatform, extra_apps: ExtraApps
) -> None:
    org = platform.org("bad-conflict")
    job = platform.install_and_wait(org, extra_apps.old_user)  # holds lib at =1.0.0
    assert job["state"] == "succeeded", job["error"]
    with unchanged(platform, org):
        problems = refused(platform.install(org, extra_apps.new_user), 409, extra_apps.lib)
        text = " ".join(p["reason"] for p in problems)
        # The chain: who needs which range of the lib, and why they clash.
        assert "=1.0.0" in text and "^2.0" in text and extra_apps.old_user in text


def test_quota_exceeded(platform: InstallPlatform) -> None:
    org = platform.org("bad-quota", max_apps=1, max_memory_mb=256, max_storage_mb=10)
    with unchanged(platform, org):
        problems = refused(platform.install(org, SALES), 409, "quota")
    where = {p["location"] for p in problems}
    assert where == {"quota.apps", "quota.memory", "quota.storage"}  # all named, with numbers
    assert any("2 of apps; its quota is 1" in p["reason"] for p in problems)


def test_invalid_org_settings(platform: InstallPlatform) -> None:
    org = platform.org("bad-config")
    with unchanged(platform, org):
        problems = refused(
            platform.install(org, SALES, config={"currency": "JPY", "pipeline_days": 3, "x": 1}),
            422,
        )
    by_location = {p["location"]: p for p in problems}
    assert set(by_location) == {"config.currency", "config.pipeline_days", "config.x"}
    assert "USD" in by_location["config.currency"]["hint"]  # the allowed values


def test_refused_consent(platform: InstallPlatform) -> None:
    org = platform.org("bad-consent")
    with unchanged(platform, org):
        problems = refused(
            platform.install(org, SALES, accept_permissions=False), 403, "not consented"
        )
        asked = {p["location"] for p in problems}
        assert asked == {f"consent.{SALES}", f"consent.{CRM}"}
        # Consenting to some permissions only is refusing the others.
        partial = {SALES: ["state"], CRM: ["state"]}
        refused(
            platform.install(org, SALES, accept_permissions=False, consent=partial),
            403,
            "tools:call:crm.*",
        )
    # Consent given per app for every permission: installed.
    full = {SALES: ["tools:call:crm.*", "events:publish:sales.updated", "state"], CRM: ["state"]}
    job = platform.install_and_wait(org, SALES, accept_permissions=False, consent=full)
    assert job["state"] == "succeeded", job["error"]


def test_refused_consent_on_the_command_line(platform: InstallPlatform, cli_as: Any) -> None:
    org = platform.org("bad-consent-cli")
    with unchanged(platform, org):
        result = cli_as("install", SALES, "--org", org)  # no terminal, no --accept-permissions
    assert result.exit_code == 1
    assert "Permissions asked for" in result.stdout and "not consented" in result.stderr


def test_failing_health_check(platform: InstallPlatform, extra_apps: ExtraApps) -> None:
    org = platform.org("bad-health")
    platform.app.state.install.config.health_timeout_s = 2
    try:
        with unchanged(platform, org):
            job = failed_job(platform, org, extra_apps.unhealthy)
            assert "answered 500" in job["error"][0]["reason"]
            assert "apprt logs" in job["error"][0]["hint"]
            job = failed_job(platform, org, extra_apps.crashing)
            assert "failed to start" in job["error"][0]["reason"]
            assert "cannot start" in job["error"][0]["hint"]  # the app's last words
    finally:
        platform.app.state.install.config.health_timeout_s = 10


def test_tampered_package_is_refused(platform: InstallPlatform, extra_apps: ExtraApps) -> None:
    """The stored copy of a package is verified against the registry's signed TUF
    metadata at every install; a changed byte refuses the install."""
    org = platform.org("bad-tampered")
    app = extra_apps.tampered
    sha = platform.http.get(f"/api/v1/registry/apps/{app}/versions/1.0.0").json()["sha256"]
    blob = platform.app.state.blob_store.path_of(sha)
    original = blob.read_bytes()
    os.chmod(blob, 0o644)
    blob.write_bytes(original[:100] + bytes([original[100] ^ 0xFF]) + original[101:])
    try:
        with unchanged(platform, org):
            job = failed_job(platform, org, app)
        error = job["error"][0]
        assert "does not match the length and sha256 the registry signed" in error["reason"]
        assert next(s for s in job["steps"] if s["name"] == "download")["attempts"] == 1
    finally:
        blob.write_bytes(original)


@pytest.fixture
def tiny_disk(platform: InstallPlatform, tmp_path: Path) -> Iterator[Path]:
    """Unpacked trees go to a 256 KiB tmpfs: too small for sales-dashboard's wheels."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    env = platform.app.state.install
    saved = env.artifacts
    env.artifacts = ArtifactStore(mount / "apps")
    try:
        yield mount
    finally:
        env.artifacts = saved
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_deployment(platform: InstallPlatform, tiny_disk: Path) -> None:
    org = platform.org("bad-disk")
    with unchanged(platform, org):
        job = failed_job(platform, org, SALES)
    error = job["error"][0]
    assert error["location"] == "disk" and "no space left" in error["reason"]
    failed = next(s for s in job["steps"] if s["attempts"] and s["name"] == "deploy")
    assert failed["state"] == "compensated"
    # Nothing of sales-dashboard is left on the full disk (no partial tree either);
    # crm-connector's tree fitted and stays only because other organizations use it.
    left = {p.name for p in (tiny_disk / "apps").iterdir()}
    crm_sha = platform.http.get(f"/api/v1/registry/apps/{CRM}/versions/1.2.0").json()["sha256"]
    assert left <= {crm_sha}


def test_a_rollback_that_cannot_finish_leaves_a_failed_row_uninstall_cleans(
    platform: InstallPlatform, extra_apps: ExtraApps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When undoing a step fails too, the job ends ``failed`` (an operator must look)
    and the installation shows ``failed``; uninstalling it removes what is left."""
    org = platform.org("bad-undo")
    before = platform.snapshot(org)
    monkeypatch.setenv(
        "APPRT_FAILPOINTS", "install.health.before=error,install.allocate.compensate=error"
    )
    r = platform.install(org, extra_apps.static)
    job = platform.wait(r.json()["job_id"])
    monkeypatch.delenv("APPRT_FAILPOINTS")
    assert job["state"] == "failed"
    events = platform.http.get(f"/api/v1/jobs/{job['id']}/events").text
    assert "an operator must clean up" in events
    row = platform.http.get(f"/api/v1/orgs/{org}/installations/{extra_apps.static}").json()
    assert row["state"] == "failed"
    again = platform.install(org, extra_apps.static)
    refused(again, 409, "failed", "uninstall the app to clean up")
    assert platform.uninstall_and_wait(org, extra_apps.static)["state"] == "succeeded"
    assert platform.snapshot(org) == before
