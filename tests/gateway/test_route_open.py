"""A route made closed (an install or update not yet activated) is not served until it
is opened: 503 with Retry-After, not the 404 of an app that is not installed; it stays
as it was across a platform restart."""

from __future__ import annotations

from pathlib import Path

from apprt.manifest import Resources
from apprt.runtime.supervisor import DeploySpec
from tests.runtime._platform import ECHO, ECHO_ID, Platform, platform_settings


def _spec(platform: Platform, org: str) -> DeploySpec:
    return DeploySpec(
        app_id=ECHO_ID,
        version="1.0.0",
        code_dir=ECHO,
        entry="echo_app.main:app",
        org=org,
        resources=Resources(request_timeout_s=30),
        trusted=True,
    )


def test_a_closed_route_opens_at_activation_and_survives_a_restart(tmp_path: Path) -> None:
    settings = platform_settings(tmp_path, "process")
    platform = Platform(settings)
    try:
        platform.org("acme")
        platform.run(platform.supervisor.deploy(_spec(platform, "acme"), live=False))
        platform.run(platform.supervisor.activate("acme", ECHO_ID))  # running, but closed
        with platform.client() as client:
            closed = client.get(f"/apps/acme/{ECHO_ID}/echo")
            assert closed.status_code == 503, closed.text
            assert closed.headers["retry-after"] == "5"
            assert "being installed or updated" in closed.json()["problems"][0]["reason"]
            assert client.get(f"/apps/acme/{ECHO_ID}x/echo").status_code == 404
    finally:
        platform.close()

    platform = Platform(settings)  # a restart: the route is still closed
    try:
        with platform.client() as client:
            assert client.get(f"/apps/acme/{ECHO_ID}/echo").status_code == 503
            platform.run(platform.supervisor.open_route("acme", ECHO_ID))
            opened = client.get(f"/apps/acme/{ECHO_ID}/echo")
            assert opened.status_code == 200, opened.text
            platform.run(platform.supervisor.open_route("acme", ECHO_ID, live=False))
            assert client.get(f"/apps/acme/{ECHO_ID}/echo").status_code == 503
    finally:
        platform.close()
