"""What the crash-safety tests share (``test_crash.py``, ``test_update_crash.py``): a real
``apprt serve`` on a copied data directory, started with failpoints that make it
``kill -9`` itself, and the loop that restarts it at each next crash point.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from apprt.settings import Settings
from tests._serve import ServeProcess, environment
from tests.install.conftest import DRIVER

T = TypeVar("T")


class Server:
    """``apprt serve`` on the test's data directory (see :class:`tests._serve.ServeProcess`)."""

    def __init__(
        self, data: Path, log: Path, uv_cache: Path, failpoints: str = "", *, wait: bool = True
    ) -> None:
        env = environment(
            {
                "APPRT_RUNTIME_DRIVER": DRIVER,
                "APPRT_RUNTIME_STOP_ON_SHUTDOWN": "true",
                "APPRT_IDLE_TIMEOUT_S": "0",
                "APPRT_INSTALL_UV_CACHE": str(uv_cache),
                "APPRT_INSTALL_HEALTH_TIMEOUT_S": "10",
            },
            inherit_apprt=False,
        )
        if failpoints:
            env["APPRT_FAILPOINTS"] = failpoints
        self.log = log
        self.process = ServeProcess(data, env=env, log=log)
        self.proc = self.process.proc
        self.base = self.process.url
        self.token = (data / "admin.token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        if wait:
            self.process.wait_healthy()

    def wait_job(self, job_id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.http.get(f"/api/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "rolled_back", "failed"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stuck: {job}\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.http.close()
        self.process.close(timeout=20)


@contextlib.contextmanager
def serve(
    data: Path, log: Path, uv_cache: Path, failpoints: str = "", *, wait: bool = True
) -> Iterator[Server]:
    server = Server(data, log, uv_cache, failpoints, wait=wait)
    try:
        yield server
    finally:
        server.stop()


def job_events(server: Server, job_id: int) -> str:
    return server.http.get(f"/api/v1/jobs/{job_id}/events").text


def newest_job(settings: Settings) -> int:
    from sqlalchemy import func, select

    from apprt.db.engine import make_engine
    from apprt.jobs.models import Job

    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            newest = connection.scalar(select(func.max(Job.id)))
    finally:
        engine.dispose()
    assert newest is not None, "the install job was not even recorded"
    return int(newest)


def copy_template(template: Path, data: Path) -> None:
    shutil.copytree(template, data, symlinks=True, ignore=shutil.ignore_patterns("*.sock"))


def start_and_die(server: Server, start: Callable[[], httpx.Response]) -> int:
    """Start the job (``start``, answered 202) on a server set to crash in it; wait for the
    SIGKILL. The job's id, or 0 when the server died before it answered."""
    log = server.log
    try:
        r = start()
    except httpx.RemoteProtocolError:
        job_id = 0  # killed (maybe by the job's first step) before the answer went out
    else:
        assert r.status_code == 202, (r.text, log.read_text()[-4000:])
        job_id = int(r.json()["job_id"])
    assert server.proc.wait(timeout=60) == -signal.SIGKILL, log.read_text()[-3000:]
    return job_id


def crash_again(data: Path, log: Path, uv_cache: Path, points: list[str]) -> None:
    """Restart the platform with each crash point in turn: the job resumes at start, runs
    into that point and dies there."""
    for point in points:
        with serve(data, log, uv_cache, f"{point}=crash", wait=False) as server:
            assert server.proc.wait(timeout=60) == -signal.SIGKILL, (point, log.read_text())


def run_scenarios(
    workers: int, scenarios: Mapping[str, Callable[[], T]]
) -> dict[str, T | BaseException]:
    """Run the scenarios, ``workers`` at a time; each one's outcome or what it raised (which
    the scenario's own test re-raises, see :func:`outcome`)."""
    results: dict[str, T | BaseException] = {}
    with ThreadPoolExecutor(workers) as pool:
        futures = {name: pool.submit(scenario) for name, scenario in scenarios.items()}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except BaseException as exc:  # reported by the scenario's own test
                results[name] = exc
    return results


def outcome(outcomes: dict[str, T | BaseException], name: str) -> T:
    result = outcomes[name]
    if isinstance(result, BaseException):
        raise result
    return result
