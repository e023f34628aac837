"""Lifecycle hooks run inside the app's sandbox, through a door only the platform opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprt.manifest import Resources
from apprt.runtime.supervisor import DeploySpec, HookFailedError
from tests.runtime._platform import available_drivers, running_platform

CRM = Path(__file__).parents[2] / "examples" / "crm-connector"
APP = "com.example.crm-connector"


@pytest.mark.parametrize("driver", available_drivers())
def test_hooks_run_in_the_sandbox_and_users_cannot_reach_the_door(
    tmp_path: Path, driver: str
) -> None:
    with running_platform(tmp_path, driver) as platform:
        platform.org("acme")
        spec = DeploySpec(
            app_id=APP,
            version="1.2.0",
            code_dir=CRM,
            entry="crm_connector.main:app",
            org="acme",
            resources=Resources(request_timeout_s=10),
            trusted=True,
        )
        platform.run(platform.supervisor.deploy(spec))  # Installed: not running yet
        result = platform.run(
            platform.supervisor.call_hook("acme", APP, "crm_connector.hooks:on_install", {})
        )
        assert result == {"contacts": 3, "deals": 3}  # the example's hook, woken for it
        with pytest.raises(HookFailedError, match="ModuleNotFoundError"):
            platform.run(platform.supervisor.call_hook("acme", APP, "nope.hooks:x", {}))
        with platform.client() as client:
            for path in ("/.apprt/hook", "/%2Eapprt/hook", "/.apprt/anything"):
                r = client.post(f"/apps/acme/{APP}{path}", json={"hook": "os:getcwd"})
                assert r.status_code == 404, (path, r.text)
            assert client.get(f"/apps/acme/{APP}/healthz").status_code == 200
