"""Driver capabilities decide what may be deployed: the process driver enforces no limit,
so an untrusted app is refused at deploy (and at update) with what, which driver and
how to fix it, unless it is trusted or the operator allowed untrusted apps; the driver's
capabilities are shown by ``/api/v1/runtime/driver`` and ``apprt runtime driver``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apprt.accounts.models import OrgRole
from apprt.manifest import Resources
from apprt.runtime.drivers.base import Capabilities, missing_capabilities
from apprt.runtime.lifecycle import State
from apprt.runtime.supervisor import DeploySpec, InvalidDeploySpecError
from tests.runtime._platform import ECHO, ECHO_ID, Platform, running_platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("caps"), "process") as platform:
        yield platform


def _spec(platform: Platform, org: str, *, trusted: bool, version: str = "1.0.0") -> DeploySpec:
    code = platform.settings.data_dir.parent / "code" / f"caps-{org}-{version}"
    if not code.exists():
        shutil.copytree(ECHO, code)
    return DeploySpec(
        app_id=ECHO_ID,
        version=version,
        code_dir=code,
        entry="echo_app.main:app",
        org=org,
        resources=Resources(request_timeout_s=5),
        trusted=trusted,
    )


def test_an_untrusted_app_is_refused_on_a_driver_without_limits(platform: Platform) -> None:
    org = platform.org("untrusted")
    with pytest.raises(InvalidDeploySpecError) as caught:
        platform.run(platform.supervisor.deploy(_spec(platform, org, trusted=False)))
    (problem,) = caught.value.problems
    print(problem)
    assert "not trusted" in problem.reason and "process driver" in problem.reason
    for need in ("memory limit", "cpu limit", "pids limit", "storage quota"):
        assert need in problem.reason
    assert problem.location == "resources"
    assert "APPRT_RUNTIME_DRIVER=bwrap" in problem.hint
    assert "APPRT_ALLOW_UNTRUSTED_PROCESS_DRIVER=1" in problem.hint
    assert platform.supervisor.lookup(org, ECHO_ID) is None  # nothing was placed


def test_a_trusted_app_runs_and_cannot_be_updated_to_an_untrusted_version(
    platform: Platform,
) -> None:
    org = platform.org("trusted")
    platform.run(platform.supervisor.deploy(_spec(platform, org, trusted=True)))
    info = platform.run(platform.supervisor.activate(org, ECHO_ID))
    assert info.state is State.RUNNING
    update = _spec(platform, org, trusted=False, version="1.1.0")
    with pytest.raises(InvalidDeploySpecError, match="process driver cannot enforce"):
        platform.run(platform.supervisor.update(org, ECHO_ID, update))
    info = platform.supervisor.get(org, ECHO_ID)
    assert (info.version, info.state) == ("1.0.0", State.RUNNING)


def test_the_operator_may_allow_untrusted_apps_on_the_process_driver(tmp_path: Path) -> None:
    with running_platform(tmp_path, "process", allow_untrusted_process_driver=True) as platform:
        org = platform.org("allowed")
        platform.run(platform.supervisor.deploy(_spec(platform, org, trusted=False)))
        info = platform.run(platform.supervisor.activate(org, ECHO_ID))
        assert info.state is State.RUNNING and not info.trusted
        with platform.client() as client:
            assert client.get("/api/v1/runtime/driver").json()["allow_untrusted"] is True


def test_the_api_and_cli_show_the_drivers_capabilities(
    platform: Platform, apprt: Callable[..., Any]
) -> None:
    with platform.client() as client:
        data = client.get("/api/v1/runtime/driver").json()
    assert data["name"] == "process" and data["healthy"] is True
    assert data["allow_untrusted"] is False
    assert data["capabilities"]["memory_limit"] is False
    assert data["capabilities"]["storage_quota"] is False
    assert data["capabilities"]["recover"] is True
    assert data["attributes"]["python"]  # the platform admin sees what was found
    member = platform.member_token(platform.org("members"), "mia", OrgRole.MEMBER)
    with platform.client() as client:
        seen = client.get(
            "/api/v1/runtime/driver", headers={"authorization": f"Bearer {member}"}
        ).json()
    assert seen["capabilities"] == data["capabilities"] and seen["attributes"] == {}
    result = apprt("runtime", "driver", "--url", platform.url, "--token", platform.token)
    assert result.exit_code == 0, result.stderr
    assert "driver process" in result.stdout and "memory_limit" in result.stdout
    as_json = apprt("runtime", "driver", "--json", "--url", platform.url, "--token", platform.token)
    assert as_json.json()["capabilities"] == data["capabilities"]


def test_what_an_app_needs_depends_on_its_resources() -> None:
    sandbox_without_quota = Capabilities(
        filesystem_isolation=True,
        network_isolation=True,
        pid_isolation=True,
        seccomp=True,
        memory_limit=True,
        cpu_limit=True,
        pids_limit=True,
        storage_quota=False,
        recover=True,
    )
    assert missing_capabilities(sandbox_without_quota, Resources(storage_mb=10)) == [
        "storage_quota"
    ]
    # no data directory to fill (storage_mb = 0: read-only): no quota needed
    assert missing_capabilities(sandbox_without_quota, Resources(storage_mb=0)) == []
