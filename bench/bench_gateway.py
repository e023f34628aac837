"""Gateway and runtime figures against a real ``apprt serve`` on 127.0.0.1.

* **wake**: an instance is suspended (``POST .../suspend``), then one request through
  the gateway is timed from send to the last byte of the response: the wake (Suspended
  -> Loading -> Running, the sandbox start) and the request. Targets p50 <= 30 ms,
  p99 <= 100 ms.
* **overhead**: the same request (``GET /healthz`` of a tiny raw-ASGI app) sent one at a
  time on a keep-alive connection, directly to the instance's ingress socket and
  through the gateway (TCP, token, signed identity headers); the difference of the
  medians. Target <= 1 ms.
* **throughput**: the same request with ``CONCURRENCY`` keep-alive connections for
  ``LOAD_S`` seconds (at most ``LOAD_MAX`` requests), direct and through the gateway;
  the ratio of the rates. Target >= 70 %. The load generator is this process (one
  core's worth of Python), so both figures share its ceiling.
* **density**: 1,000 instances installed (1,000 organizations), 200 of them started
  by a first request through the gateway; then every one of the 200 answers again.
  Reported: whether all of that held, the memory of the 200 sandboxes (sum of PSS,
  and per instance against the issue's 10 MB), and the platform's RSS.

The platform runs with the default driver (``bwrap``) when it works here, else the
``process`` driver; the figures name it. Everything stops by itself: the load is
bounded in time and count, the platform is stopped with SIGTERM after suspending
every sandbox (``APPRT_RUNTIME_STOP_ON_SHUTDOWN``), and leftovers are killed by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from tests._serve import reserved_port

from bench._harness import Figure, percentile, sandbox_pss_kb

WAKES = 40
SEQUENTIAL = 1500
CONCURRENCY = 16
LOAD_S = 2.0
LOAD_MAX = 60_000
INSTALLED = 1000
RUNNING = 200
IDLE_S = 3.0
REST_S = 0.3
ROUNDS = 3

APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b'{"ok":true}'
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": body})
"""


# -- a minimal keep-alive HTTP/1.1 client (the same for both paths) ------------------


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, *, port: int | None = None, path: str | None = None) -> Conn:
        if path is not None:
            reader, writer = await asyncio.open_unix_connection(path)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _request(path: str, token: str | None) -> bytes:
    auth = f"authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nhost: bench\r\n{auth}\r\n".encode()


async def _sequential(open_: Any, request: bytes, count: int) -> list[float]:
    conn = await open_()
    try:
        for _ in range(50):
            await conn.get(request)
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            status = await conn.get(request)
            samples.append(time.perf_counter() - start)
            assert status == 200, status
        return samples
    finally:
        conn.close()


async def _load(open_: Any, request: bytes) -> float:
    """Requests per second with CONCURRENCY connections, bounded by LOAD_S and LOAD_MAX."""
    done = 0
    deadline = time.perf_counter() + LOAD_S

    async def worker() -> None:
        nonlocal done
        conn = await open_()
        try:
            while time.perf_counter() < deadline and done < LOAD_MAX:
                status = await conn.get(request)
                assert status == 200, status
                done += 1
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - start)


# -- the platform ---------------------------------------------------------------------


def _driver_name() -> str:
    from apprt.runtime.supervisor import make_driver
    from apprt.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        try:
            driver = make_driver(Settings(data_dir=Path(tmp), runtime_driver="bwrap"))
        except Exception:
            return "process"
        driver.close()
    return "bwrap"


def _env(data_dir: Path, driver: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPRT_")}
    env.update(
        APPRT_DATA_DIR=str(data_dir),
        APPRT_RUNTIME_DRIVER=driver,
        APPRT_IDLE_TIMEOUT_S="0",
        APPRT_RUNTIME_STOP_ON_SHUTDOWN="1",
        APPRT_GATEWAY_RATE_PER_S="1000000",
        APPRT_GATEWAY_RATE_BURST="1000000",
        APPRT_LOG_LEVEL="warning",
    )
    return env


def _place(data_dir: Path, driver: str, code: Path, count: int) -> None:
    """What the install engine will do: organizations and Installed instances."""
    import asyncio as aio

    from apprt.accounts.orgs import create_org
    from apprt.db.engine import make_engine, session_factory, session_scope
    from apprt.db.migrate import upgrade_to_head
    from apprt.manifest import Resources
    from apprt.runtime.supervisor import DeploySpec, Supervisor, make_driver
    from apprt.settings import Settings

    settings = Settings(data_dir=data_dir, runtime_driver=driver)
    engine = make_engine(settings)
    upgrade_to_head(engine)
    sessions = session_factory(engine)
    with session_scope(sessions) as session:
        for n in range(count):
            create_org(session, f"org{n:04d}")

    async def place() -> None:
        supervisor = Supervisor(
            settings, sessions, make_driver(settings), instance_key=lambda _: b"k"
        )
        for n in range(count):
            spec = DeploySpec(
                app_id="com.bench.hello",
                version="1.0.0",
                code_dir=code,
                entry="hello:app",
                org=f"org{n:04d}",
                resources=Resources(memory_mb=64, storage_mb=0, max_concurrency=10000),
                trusted=True,
            )
            await supervisor.deploy(spec)
        await supervisor.close()  # deploy() only wrote rows and directories

    aio.run(place())
    engine.dispose()


def _handles(data_dir: Path) -> dict[str, dict[str, Any]]:
    from apprt.db.engine import make_engine, session_factory, session_scope
    from apprt.runtime.models import Instance
    from apprt.settings import Settings

    engine = make_engine(Settings(data_dir=data_dir))
    try:
        with session_scope(session_factory(engine)) as session:
            return {
                r.org or "": r.handle
                for r in session.scalars(select(Instance))
                if r.handle is not None
            }
    finally:
        engine.dispose()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _kill_leftovers(data_dir: Path) -> None:
    with contextlib.suppress(Exception):
        for handle in _handles(data_dir).values():
            with contextlib.suppress(OSError):
                os.kill(int(handle["pid"]), signal.SIGKILL)
    with contextlib.suppress(Exception):
        from apprt.runtime.drivers import _volume, bwrap
        from apprt.settings import Settings

        bwrap.from_settings(Settings(data_dir=data_dir)).shutdown()
        for mounted in (data_dir / "runtime" / "instances").glob("*/data"):
            _volume.unmount(mounted)


def run() -> list[Figure]:
    driver = _driver_name()
    with tempfile.TemporaryDirectory(prefix="apprt-bench-") as tmp:
        root = Path(tmp)
        code = root / "code"
        (code / "backend").mkdir(parents=True)
        (code / "backend" / "hello.py").write_text(APP)
        data_dir = root / "data"
        started = time.perf_counter()
        _place(data_dir, driver, code, INSTALLED)
        place_s = time.perf_counter() - started
        with reserved_port() as port:
            url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "apprt",
                    "serve",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data_dir),
                ],
                env=_env(data_dir, driver),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                return _measure(url, port, proc, data_dir, driver, place_s)
            finally:
                _stop(proc)
                _kill_leftovers(data_dir)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("apprt serve did not start")
        time.sleep(0.1)


def _measure(
    url: str, port: int, proc: subprocess.Popen[bytes], data_dir: Path, driver: str, place_s: float
) -> list[Figure]:
    _wait_healthy(url, proc)
    token = (data_dir / "admin.token").read_text().strip()
    app = "com.bench.hello"
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=60) as c:
        figures = _wake(c, app, driver)
        figures += _overhead(port, data_dir, app, token)
        figures += _density(c, proc, data_dir, app, driver)
    figures.append(
        Figure(
            "density_place_1000_s", f"placing {INSTALLED} instances (rows, dirs)", place_s, "s", ""
        )
    )
    return figures


def _wake(client: httpx.Client, app: str, driver: str) -> list[Figure]:
    """Suspend, let it rest (as a hibernated app does), then time one request."""
    org = "org0000"
    assert client.get(f"/apps/{org}/{app}/").status_code == 200  # first start
    wakes = []
    for _ in range(WAKES):
        assert client.post(f"/api/v1/runtime/apps/{org}/{app}/suspend").status_code == 200
        time.sleep(REST_S)
        start = time.perf_counter()
        response = client.get(f"/apps/{org}/{app}/")
        wakes.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    p50, p99 = percentile(wakes, 50) * 1000, percentile(wakes, 99) * 1000
    what = f"wake from Suspended to first response through the gateway ({driver})"
    return [
        Figure("gateway_wake_p50", what + ", p50", p50, "ms", "<= 30 ms", p50 <= 30),
        Figure("gateway_wake_p99", what + ", p99", p99, "ms", "<= 100 ms", p99 <= 100),
    ]


def _overhead(port: int, data_dir: Path, app: str, token: str) -> list[Figure]:
    """Same request, same app: straight to its socket, and through the gateway."""
    handle = _handles(data_dir)["org0000"]
    ingress = str(Path(handle["state"]["run_dir"]) / "ingress.sock")
    direct_req, gateway_req = _request("/", None), _request(f"/apps/org0000/{app}/", token)

    async def direct() -> Conn:
        return await Conn.open(path=ingress)

    async def through() -> Conn:
        return await Conn.open(port=port)

    async def latency() -> tuple[list[float], list[float]]:
        d = await _sequential(direct, direct_req, SEQUENTIAL)
        g = await _sequential(through, gateway_req, SEQUENTIAL)
        return d, g

    d, g = asyncio.run(latency())
    direct_ms, proxied_ms = statistics.median(d) * 1000, statistics.median(g) * 1000
    overhead = proxied_ms - direct_ms
    # Interleaved rounds, best of each: the machine is shared, a round can be unlucky.
    rates: dict[str, list[float]] = {"direct": [], "gateway": []}
    for _ in range(ROUNDS):
        rates["direct"].append(asyncio.run(_load(direct, direct_req)))
        rates["gateway"].append(asyncio.run(_load(through, gateway_req)))
    direct_rate, gateway_rate = max(rates["direct"]), max(rates["gateway"])
    ratio = gateway_rate / direct_rate * 100
    conns = f"{CONCURRENCY} connections, best of {ROUNDS}"
    return [
        Figure("gateway_direct_p50", "straight to the app's socket, p50", direct_ms, "ms", ""),
        Figure("gateway_proxied_p50", "through the gateway, p50", proxied_ms, "ms", ""),
        Figure("gateway_overhead_p50", "latency the gateway adds, p50", overhead, "ms",
               "<= 1 ms", overhead <= 1.0),
        Figure("gateway_direct_rps", f"req/s straight to the socket ({conns})", direct_rate,
               "req/s", ""),
        Figure("gateway_proxied_rps", f"req/s through the gateway ({conns})", gateway_rate, "req/s",
               ""),
        Figure("gateway_throughput_ratio", "gateway throughput / direct throughput", ratio, "%",
               ">= 70 %", ratio >= 70),
    ]  # fmt: skip


def _density(
    client: httpx.Client, proc: subprocess.Popen[bytes], data_dir: Path, app: str, driver: str
) -> list[Figure]:
    """1,000 installed, 200 started by a first request each, all answering again."""
    started = time.perf_counter()
    held = True
    for n in range(RUNNING):
        held = held and client.get(f"/apps/org{n:04d}/{app}/").status_code == 200
    start_s = time.perf_counter() - started
    for n in range(RUNNING):
        held = held and client.get(f"/apps/org{n:04d}/{app}/").status_code == 200
    states = [i["state"] for i in client.get("/api/v1/runtime/instances").json()]
    held = (
        held
        and len(states) == INSTALLED
        and states.count("running") == RUNNING
        and states.count("installed") == INSTALLED - RUNNING
        and client.get("/healthz").status_code == 200
    )
    before, start = _cpu_seconds(proc.pid), time.perf_counter()
    time.sleep(IDLE_S)  # the supervisor watching 200 running, 800 installed instances
    idle_cpu = (_cpu_seconds(proc.pid) - before) / (time.perf_counter() - start) * 100
    pss = [sandbox_pss_kb(int(h["state"]["monitor_pid"])) for h in _handles(data_dir).values()]
    total_mb = sum(pss) / 2**10
    each = total_mb / max(1, len(pss))
    platform_mb = _rss_bytes(proc.pid) / 2**20
    setup = f"{INSTALLED} installed, {RUNNING} running"
    return [
        Figure("density_held", f"{setup}, all answering ({driver})", float(held), "bool", "1",
               held),
        Figure("density_running_pss", f"PSS of the {RUNNING} running sandboxes", total_mb, "MB",
               ""),
        Figure("density_pss_per_instance", "PSS per running sandbox (all of it), idle", each,
               "MB", "<= 10 MB", each <= 10),
        Figure("density_platform_rss", f"RSS of apprt serve ({setup})", platform_mb, "MB", ""),
        Figure("density_platform_idle_cpu", f"CPU of apprt serve, idle ({setup})", idle_cpu, "%",
               ""),
        Figure("density_start_200_s", f"{RUNNING} started one after another by a request",
               start_s, "s", ""),
    ]  # fmt: skip


if __name__ == "__main__":
    for fig in run():
        print(f"{fig.name}: {fig.value:.3g} {fig.unit} (target {fig.target or '-'}) {fig.met}")
