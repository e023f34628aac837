"""The process driver: a plain subprocess with rlimits, trusted apps only unless allowed."""

from __future__ import annotations

import json
import resource

import pytest

from apprt.manifest import Resources
from apprt.runtime.drivers.base import DriverError
from apprt.runtime.drivers.process import ALLOW_ENV, ProcessDriver
from tests.runtime.drivers._apps import Workspace, get

PROBE = """
import resource
@action("/env")
def _env():
    return {k: v for k, v in os.environ.items()}
@action("/cwd")
def _cwd():
    return os.getcwd()
@action("/limits")
def _limits():
    return {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
            for n in ("NOFILE", "NPROC", "FSIZE", "CORE", "AS")}
"""


def test_untrusted_app_is_refused_unless_allowed(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = ws.config("untrusted", trusted=False)
    with pytest.raises(DriverError, match=ALLOW_ENV):
        ProcessDriver().start(config)
    monkeypatch.setenv(ALLOW_ENV, "1")
    driver = ProcessDriver()
    assert driver.allow_untrusted
    handle = driver.start(config)
    try:
        assert get(handle.ingress_socket)[0] == 200
    finally:
        driver.destroy(handle)


def test_serves_with_scrubbed_env_rlimits_and_data_dir_as_cwd(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    config = ws.config(
        "probe", extra=PROBE, resources=Resources(max_processes=40, memory_mb=128, storage_mb=50)
    )
    driver = ProcessDriver()
    handle = driver.start(config)
    try:
        env = json.loads(get(handle.ingress_socket, "/env")[1])["result"]
        assert "SECRET_TOKEN" not in env
        assert env["APPRT_APP_DATA"] == str(config.data_dir)
        assert env["APPRT_PLATFORM_SOCKET"] == str(config.run_dir / "platform.sock")
        assert env["APPRT_ORG"] == "org-probe"
        assert json.loads(get(handle.ingress_socket, "/cwd")[1])["result"] == str(config.data_dir)
        limits = json.loads(get(handle.ingress_socket, "/limits")[1])["result"]
        assert limits["CORE"] == 0
        assert limits["NPROC"] == 40
        assert limits["FSIZE"] == 50 << 20
        assert limits["AS"] == (128 + 512) << 20
        assert limits["NOFILE"] <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # nothing written outside the data directory (no bytecode caches in the code)
        assert not list(config.code_dir.rglob("__pycache__"))
    finally:
        driver.destroy(handle)


def test_start_failure_reports_the_log(ws: Workspace) -> None:
    config = ws.config("broken", extra="raise RuntimeError('boom at import')")
    with pytest.raises(DriverError, match="boom at import"):
        ProcessDriver().start(config)
