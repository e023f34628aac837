"""Deprecated and yanked versions, as the people installing them meet them: a
deprecated version still installs, with its message and replacement shown before the
install (API and CLI); a yanked one installs only when pinned exactly, with its reason
shown, and a range that would reach it is refused, naming the yank."""

from __future__ import annotations

import pytest

from tests.install.conftest import CliRun, InstallPlatform, make_app

APP = "com.example.notice"


@pytest.fixture(scope="module")
def notice_app(platform: InstallPlatform, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("notice-apps")
    for version in ("1.0.0", "1.1.0"):
        platform.publish(make_app(root, APP, version, key=platform.packages.private_key))
    registry = f"/api/v1/registry/apps/{APP}/versions"
    r = platform.http.post(
        f"{registry}/1.1.0/deprecate",
        json={"message": "stores dates in local time", "replacement": f"{APP}@2.0.0"},
    )
    assert r.status_code == 200, r.text
    r = platform.http.post(f"{registry}/1.0.0/yank", json={"reason": "leaks session tokens"})
    assert r.status_code == 200, r.text
    return APP


def test_a_deprecated_version_installs_with_its_notice(
    platform: InstallPlatform, notice_app: str, cli_as: CliRun
) -> None:
    org = platform.org("notice-deprecated")
    consent = platform.http.get(f"/api/v1/orgs/{org}/installations/{notice_app}/consent")
    assert consent.status_code == 200, consent.text
    assert consent.json()["version"] == "1.1.0"
    (notice,) = consent.json()["notices"]
    assert notice["kind"] == "deprecated" and notice["message"] == "stores dates in local time"
    assert notice["replacement"] == f"{APP}@2.0.0"

    result = cli_as("install", notice_app, "--org", org, "--accept-permissions")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{APP} 1.1.0 is deprecated: stores dates in local time" in result.stdout
    shown = platform.http.get(f"/api/v1/orgs/{org}/installations/{notice_app}").json()
    assert shown["version"] == "1.1.0"
    assert [n["kind"] for n in shown["notices"]] == ["deprecated"]  # still told afterwards


def test_a_yanked_version_installs_only_when_pinned(
    platform: InstallPlatform, notice_app: str, cli_as: CliRun
) -> None:
    org = platform.org("notice-yanked")
    before = platform.snapshot(org)
    refused = platform.install(org, notice_app, range="~1.0.0")
    assert refused.status_code == 409, refused.text
    assert "yank" in refused.text and "=1.0.0" in refused.text  # why, and how to pin it
    assert platform.snapshot(org) == before

    result = cli_as("install", f"{notice_app}@=1.0.0", "--org", org, "--accept-permissions")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{APP} 1.0.0 is yanked: leaks session tokens" in result.stdout
    shown = platform.http.get(f"/api/v1/orgs/{org}/installations/{notice_app}").json()
    assert shown["version"] == "1.0.0"
    assert [n["kind"] for n in shown["notices"]] == ["yanked"]
