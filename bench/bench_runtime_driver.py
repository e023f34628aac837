"""The sandbox layer on its own (no gateway): wake, memory per idle instance, density.

* **wake**: ``start`` of a hibernated instance (warm pool: a monitor already forked
  from the zygote and in a cgroup) to its first HTTP response over the ingress socket,
  with the instance's data volume mounted on the way, as the supervisor does it. The
  issue's target (wake through the gateway: p50 <= 30 ms, p99 <= 100 ms) is shown
  beside it; the gateway adds its own share (bench_gateway).
* **cold**: the first start on a fresh node (bubblewrap + interpreter + imports in the
  zygote, then the instance), and the process driver's start (a cold interpreter),
  for comparison.
* **idle PSS**: proportional set size of one idle running instance (server + monitor,
  ``/proc/<pid>/smaps_rollup``) with 20 running: forked children share the zygote's
  pages copy-on-write. Target <= 10 MB.
* **density**: 200 instances of a tiny app started one after the other with the fork
  design: total time, and total memory (PSS of every instance process plus the zygote).
"""

from __future__ import annotations

import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apprt.manifest import Resources
from apprt.runtime.drivers.base import TaskConfig, TaskHandle
from apprt.runtime.drivers.bwrap import BwrapDriver
from apprt.runtime.drivers.process import ProcessDriver
from bench._harness import Figure, percentile, pss_kb, sandbox_pss_kb

APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})
"""


@dataclass
class Workspace:
    root: Path

    def config(self, name: str, resources: Resources | None = None) -> TaskConfig:
        code = self.root / "code"
        if not code.exists():
            (code / "backend").mkdir(parents=True)
            (code / "backend" / "tiny.py").write_text(APP)
            for path in (code, code / "backend"):
                path.chmod(0o755)
            (code / "backend" / "tiny.py").chmod(0o644)
        return TaskConfig(
            instance_id=name,
            app_id="com.example.tiny",
            version="1.0.0",
            org=name,
            code_dir=code,
            entry="tiny:app",
            env_dir=None,
            data_dir=self.root / "data" / name,
            run_dir=self.root / "run" / name,
            resources=resources or Resources(),
            trusted=True,
            log_path=self.root / "logs" / f"{name}.log",
        )


@contextmanager
def workspace() -> Iterator[Workspace]:
    root = Path(tempfile.mkdtemp(prefix="apprt-bench-drv-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield Workspace(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def get(path: Path) -> tuple[int, bytes]:
    """One GET / over a fresh connection to the ingress socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


WAKES = 60
IDLE_RUNNING = 20
DENSITY = 200


def _instance_pss_kb(handle: TaskHandle) -> int:
    return sandbox_pss_kb(int(handle.state["monitor_pid"]))


def _destroy_all(driver: BwrapDriver, handles: list[TaskHandle]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(driver.destroy, handles))


def _wake(ws: Workspace) -> list[Figure]:
    driver = BwrapDriver(state_dir=ws.root / "state-wake")
    try:
        t0 = time.perf_counter()
        config = ws.config("wake")
        handle = driver.start(config)
        get(handle.ingress_socket)
        cold = time.perf_counter() - t0
        driver.destroy(handle)
        driver.warm()
        samples = []
        for _ in range(WAKES):
            time.sleep(0.05)  # let the pool refill, as between real wakes
            start = time.perf_counter()
            handle = driver.start(config)
            status, _ = get(handle.ingress_socket)
            samples.append(time.perf_counter() - start)
            assert status == 200
            driver.destroy(handle)
    finally:
        driver.shutdown()
    p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
    return [
        Figure(
            "driver_wake_p50",
            "bwrap driver: start of a suspended instance to its first response (no gateway), p50",
            p50,
            "ms",
            "<= 30 ms (with gateway)",
            p50 <= 30,
        ),
        Figure(
            "driver_wake_p99",
            "bwrap driver: start of a suspended instance to its first response (no gateway), p99",
            p99,
            "ms",
            "<= 100 ms (with gateway)",
            p99 <= 100,
        ),
        Figure(
            "driver_cold_start",
            "bwrap driver: first start on a fresh node (zygote from nothing) to first response",
            cold * 1000,
            "ms",
            "",
        ),
    ]


def _process_start(ws: Workspace) -> list[Figure]:
    driver = ProcessDriver()
    samples = []
    for i in range(5):
        config = ws.config(f"proc{i}")
        start = time.perf_counter()
        handle = driver.start(config)
        get(handle.ingress_socket)
        samples.append(time.perf_counter() - start)
        driver.destroy(handle)
    return [
        Figure(
            "driver_process_start_p50",
            "process driver (cold interpreter, no sandbox) start to first response, p50",
            statistics.median(samples) * 1000,
            "ms",
            "",
        )
    ]


def _idle_and_density(ws: Workspace) -> list[Figure]:
    driver = BwrapDriver(state_dir=ws.root / "state-density", warm_pool=4)
    handles: list[TaskHandle] = []
    figures: list[Figure] = []
    try:
        driver.warm()
        resources = Resources(memory_mb=64, storage_mb=16)
        start = time.perf_counter()
        for i in range(DENSITY):
            handles.append(driver.start(ws.config(f"d{i:03d}", resources=resources)))
            if i + 1 == IDLE_RUNNING:
                time.sleep(2)  # idle: lifespan done, nothing in flight
                per = [_instance_pss_kb(h) / 1024 for h in handles]
                idle = statistics.mean(per)
                figures.append(
                    Figure(
                        "instance_idle_pss",
                        f"idle running sandbox: monitor, init, server PSS ({IDLE_RUNNING} running)",
                        idle,
                        "MB",
                        "<= 10 MB",
                        idle <= 10,
                    )
                )
                start += 2  # not part of the density timing
        elapsed = time.perf_counter() - start
        for h in handles:
            assert get(h.ingress_socket)[0] == 200
        time.sleep(1)
        zygote = pss_kb(driver._zygote_pid or 0)
        total_kb = sum(_instance_pss_kb(h) for h in handles) + zygote
        cgroup_mb = sum(driver.stats(h).memory_bytes for h in handles) / (1 << 20)
        figures += [
            Figure(
                "density_200_start_total",
                f"start {DENSITY} instances of a tiny app one after the other (bwrap, fork)",
                elapsed,
                "s",
                "",
            ),
            Figure(
                "density_200_start_each",
                f"mean start of one of {DENSITY} instances (bwrap, fork)",
                elapsed / DENSITY * 1000,
                "ms",
                "",
            ),
            Figure(
                "density_200_memory_total",
                f"{DENSITY} running instances + zygote, total PSS",
                total_kb / 1024,
                "MB",
                "",
            ),
            Figure(
                "density_200_memory_each",
                f"PSS per instance with {DENSITY} running (cgroups charge "
                f"{cgroup_mb / DENSITY:.1f} MB each)",
                total_kb / 1024 / DENSITY,
                "MB",
                "<= 10 MB",
                total_kb / 1024 / DENSITY <= 10,
            ),
        ]
    finally:
        _destroy_all(driver, handles)
        driver.shutdown()
    return figures


def run() -> list[Figure]:
    with workspace() as ws:
        return [*_wake(ws), *_process_start(ws), *_idle_and_density(ws)]


if __name__ == "__main__":
    for fig in run():
        print(f"{fig.name}: {fig.value:.3g} {fig.unit} (target {fig.target or '-'})")
