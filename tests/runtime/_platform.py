"""A real platform for runtime, gateway and metrics tests.

``Platform`` runs ``create_app`` under uvicorn on 127.0.0.1 (a free port) in a thread,
with a real sandbox driver, and offers what the tests need: orgs, deploying the test
apps, a client with the admin's token, and the supervisor's coroutines from the test
thread. On close every sandbox is stopped (``runtime_stop_on_shutdown``) and, as a
safety net, any process a handle still names is killed by pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from apprt.accounts.models import Organization, OrgRole
from apprt.accounts.orgs import create_org, create_user, grant
from apprt.accounts.services import create_token
from apprt.db.engine import session_scope
from apprt.manifest import Resources, Tenancy
from apprt.runtime.models import Instance
from apprt.runtime.supervisor import DeploySpec, InstanceInfo, Supervisor
from apprt.server import create_app
from apprt.settings import Settings

T = TypeVar("T")

APPS = Path(__file__).parent / "apps"
ECHO = APPS / "echo"
ECHO_ID = "com.test.echo"


def available_drivers() -> list[Any]:
    """``process`` always; ``bwrap`` once its driver module exists on this host."""
    import importlib.util

    params: list[Any] = ["process"]
    has_bwrap = importlib.util.find_spec("apprt.runtime.drivers.bwrap") is not None
    params.append(
        pytest.param(
            "bwrap",
            marks=pytest.mark.skipif(
                not has_bwrap or shutil.which("bwrap") is None,
                reason="the bwrap driver is not available here",
            ),
        )
    )
    return params


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
            proxy_headers=False,  # the gateway sets X-Forwarded-For itself
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="platform", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120  # a guard against hanging, not a bound
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the platform did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.token = settings.admin_token_path.read_text().strip()
        self.headers = {"authorization": f"Bearer {self.token}"}
        self.pids: set[int] = set()

    @property
    def supervisor(self) -> Supervisor:
        supervisor: Supervisor | None = self.app.state.supervisor
        assert supervisor is not None, self.app.state.runtime_error
        return supervisor

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        result = self.supervisor.run_sync(coro, timeout)
        self._remember_pids()
        return result

    def _remember_pids(self) -> None:
        for slot in list(self.supervisor.slots.values()):
            if slot.handle is not None:
                self.pids.add(slot.handle.pid)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30, **kwargs)

    def org(self, slug: str) -> str:
        with session_scope(self.app.state.session_factory) as session:
            create_org(session, slug)
        return slug

    def member_token(self, org: str, name: str, role: OrgRole = OrgRole.MEMBER) -> str:
        with session_scope(self.app.state.session_factory) as session:
            user = create_user(session, name)
            org_row = session.scalars(select(Organization).where(Organization.slug == org)).one()
            grant(session, org_row, user, role)
            return create_token(session, user, "test")

    def deploy(
        self,
        org: str,
        *,
        source: Path = ECHO,
        app_id: str = ECHO_ID,
        version: str = "1.0.0",
        tenancy: Tenancy = Tenancy.isolated,
        activate: bool = True,
        **resources: Any,
    ) -> InstanceInfo:
        code = self.settings.data_dir.parent / "code" / f"{app_id}-{version}-{org}"
        if not code.exists():
            shutil.copytree(source, code)
        spec = DeploySpec(
            app_id=app_id,
            version=version,
            code_dir=code,
            entry="echo_app.main:app",
            org=org,
            tenancy=tenancy,
            resources=Resources(**{"request_timeout_s": 5, **resources}),
            trusted=True,
        )
        info = self.run(self.supervisor.deploy(spec))
        if activate:
            info = self.run(self.supervisor.activate(org, app_id))
        return info

    def pid_of(self, org: str, app_id: str = ECHO_ID) -> int | None:
        return self.supervisor.get(org, app_id).pid

    def wait_for(self, predicate: Any, timeout: float = 60, what: str = "condition") -> None:
        """Poll ``predicate`` until true; ``timeout`` only guards against hanging."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)
            self._remember_pids()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._remember_pids()
        self.server.should_exit = True
        self.thread.join(30)
        kill_recorded(self.settings, self.pids)


def kill_recorded(settings: Settings, pids: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    """Kill every process a persisted handle (or ``pids``) names, by pid."""
    from apprt.db.engine import make_engine, session_factory

    found = set(pids)
    data_dirs: list[Path] = []
    engine = make_engine(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            for row in session.scalars(select(Instance)):
                data_dirs.append(Path(row.data_dir))
                if row.handle:
                    found.add(int(row.handle["pid"]))
    except Exception:
        pass
    finally:
        engine.dispose()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    # The bwrap driver keeps a zygote per state directory and mounts a quota volume on
    # each data directory; both go with the test's data directory.
    try:
        from apprt.runtime.drivers import _volume, bwrap
    except ImportError:
        return
    with contextlib.suppress(Exception):
        bwrap.from_settings(settings).shutdown()
    for data_dir in data_dirs:
        with contextlib.suppress(Exception):
            _volume.unmount(data_dir)


def platform_settings(tmp_path: Path, driver: str = "process", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "runtime_driver": driver,
        "runtime_stop_on_shutdown": True,
        "runtime_watch_interval_s": 0.05,
        "idle_timeout_s": 0,
        "restart_backoff_s": 0.05,
        "restart_backoff_max_s": 0.4,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.contextmanager
def running_platform(
    tmp_path: Path, driver: str = "process", **overrides: Any
) -> Iterator[Platform]:
    platform = Platform(platform_settings(tmp_path, driver, **overrides))
    try:
        yield platform
    finally:
        platform.close()
