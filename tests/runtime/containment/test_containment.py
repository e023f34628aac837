"""Containment on the real bwrap driver: each attack is stopped or limited, recorded,
and a bystander app on the same platform keeps serving (its latency is reported).

All targets are 127.0.0.1 or files of this test; every process is one the test
started, and the driver destroys each attacker (its whole pid namespace) at the end.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apprt.manifest import Resources
from apprt.runtime.drivers.base import TaskHandle
from apprt.runtime.drivers.bwrap import BwrapDriver
from tests.runtime.containment.conftest import Bystander
from tests.runtime.drivers._apps import Workspace, get

ATTACKS = r"""
import ctypes, errno, json, os, signal, socket, threading, time

def _try(fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as exc:
        return {"ok": False, "errno": exc.errno, "error": f"{type(exc).__name__}: {exc}"}

def _read(path):
    with open(path, "rb") as f:
        return f.read(64).decode("latin-1")

@action("/read-host")
def _read_host():
    return {p: _try(lambda p=p: _read(p)) for p in json.loads(os.environ["ATTACK_FILES"])}

@action("/identity")
def _identity():
    lines = open("/proc/self/status").read().splitlines()
    fields = dict(l.split(":", 1) for l in lines if ":" in l)
    return {
        "uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(),
        "CapEff": fields["CapEff"].strip(), "CapPrm": fields["CapPrm"].strip(),
        "NoNewPrivs": fields["NoNewPrivs"].strip(), "Seccomp": fields["Seccomp"].strip(),
        "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "ifaces": [n for _, n in socket.if_nameindex()],
        "root": sorted(os.listdir("/")),
        "env": sorted(os.environ),
        "write_code": _try(lambda: open("/app/backend/evil.py", "w").write("x")),
        "write_usr": _try(lambda: open("/usr/evil", "w").write("x")),
    }

@action("/net")
def _net():
    tcp = int(os.environ["ATTACK_TCP_PORT"])
    udp = int(os.environ["ATTACK_UDP_PORT"])
    def send_udp():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return s.sendto(b"exfiltrate", ("127.0.0.1", udp))
    def egress(port):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(os.environ["APPRT_EGRESS_SOCKET"])
            s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = s.recv(200).decode().split("\r\n")[0]
            if head.endswith("200 Connection Established"):
                s.sendall(b"hello through the proxy")
                return head, s.recv(100).decode()
            return head, None
    return {
        "tcp": _try(lambda: socket.create_connection(("127.0.0.1", tcp), timeout=2).close()),
        "udp": _try(send_udp),
        "egress_granted": _try(lambda: egress(tcp)),
        "egress_other": _try(lambda: egress(int(os.environ["ATTACK_OTHER_PORT"]))),
    }

@action("/signal")
def _signal():
    libc = ctypes.CDLL(None, use_errno=True)
    def call(fn, *args):
        r = fn(*args)
        return [r, ctypes.get_errno() if r == -1 else 0]
    out = {}
    for name in ("ATTACK_PLATFORM_PID", "ATTACK_ZYGOTE_PID", "ATTACK_BYSTANDER_PID"):
        pid = int(os.environ[name])
        out[name] = {
            "kill": _try(lambda: os.kill(pid, signal.SIGCONT)),
            "ptrace_attach": call(libc.ptrace, 16, pid, 0, 0),
            "process_vm_readv": call(libc.syscall, 310, pid, 0, 0, 0, 0, 0),
        }
    out["getppid"] = os.getppid()
    out["kill_all"] = _try(lambda: os.kill(-1, signal.SIGCONT))
    out["unshare_user"] = call(libc.unshare, 0x10000000)
    out["mount"] = call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None)
    out["setuid0"] = _try(lambda: os.setuid(0))
    out["chroot"] = _try(lambda: os.chroot("/tmp"))
    return out

@action("/forkbomb")
def _forkbomb():
    forked, error = 0, None
    for _ in range(500):
        try:
            pid = os.fork()
        except OSError as exc:
            error = exc.errno
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        forked += 1
    return {"forked": forked, "errno": error}

@action("/eat")
def _eat():
    hoard = []
    for _ in range(64):  # up to 512 MiB, each page written
        hoard.append(bytearray(b"x") * (8 << 20))
    return len(hoard)

@action("/spin")
def _spin():
    end = time.monotonic() + float(os.environ.get("ATTACK_SPIN_S", "2"))
    n = 0
    while time.monotonic() < end:
        n += 1
    return n

@action("/fill")
def _fill():
    out = {}
    for where in ("/data", "/tmp"):
        written, error = 0, None
        try:
            for i in range(100):
                with open(f"{where}/fill-{i}", "wb") as f:
                    for _ in range(8):
                        f.write(b"z" * (256 << 10))
                        written += 256 << 10
        except OSError as exc:
            error = exc.errno
        out[where] = {"written": written, "errno": error}
    return out
"""


def _call(handle: TaskHandle, path: str, timeout: float = 30) -> Any:
    status, body = get(handle.ingress_socket, path, timeout=timeout)
    assert status == 200, body
    data = json.loads(body)
    assert data["ok"], data
    return data["result"]


@pytest.fixture
def attacker(
    driver: BwrapDriver, ws: Workspace, bystander: Bystander
) -> Iterator[Callable[..., TaskHandle]]:
    started: list[TaskHandle] = []

    def start(
        name: str, resources: Resources | None = None, env: dict[str, str] | None = None
    ) -> TaskHandle:
        config = ws.config(name, extra=ATTACKS, resources=resources, env=env, trusted=False)
        handle = driver.start(config)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        driver.destroy(handle)


def test_host_files_and_other_apps_data_are_out_of_reach(
    attacker: Callable[..., TaskHandle], bystander: Bystander, ws: Workspace, report: Any
) -> None:
    platform_db = ws.root / "platform" / "apprt.db"
    platform_db.parent.mkdir()
    platform_db.write_text("SQLite format 3 (the platform's database)")
    targets = [
        "/etc/shadow",
        "/etc/passwd",
        str(platform_db),
        str(bystander.data_dir / "secret.txt"),
        f"/proc/{bystander.handle.pid}/root/data/secret.txt",
        "/root/.bash_history",
        "/proc/1/environ",
    ]
    handle = attacker("reader", env={"ATTACK_FILES": json.dumps(targets)})
    results, samples = bystander.during(lambda: _call(handle, "/read-host"))
    report("read host files", samples)
    for path in targets[:-1]:
        assert not results[path]["ok"], (path, results[path])
        assert results[path]["errno"] in (errno.ENOENT, errno.EACCES), (path, results[path])
    # its own /proc/1 (itself) is readable, and holds only the scrubbed environment
    ident = _call(handle, "/identity")
    assert ident["root"] == sorted(
        [
            "app",
            "bin",
            "data",
            "dev",
            "etc",
            "lib",
            "lib64",
            "opt",
            "proc",
            "root",
            "run",
            "sbin",
            "tmp",
            "usr",
            "env",
        ]
    )
    assert "SECRET" not in " ".join(ident["env"]) and "PYTEST_CURRENT_TEST" not in ident["env"]
    assert not ident["write_code"]["ok"] and ident["write_code"]["errno"] == errno.EROFS
    assert not ident["write_usr"]["ok"] and ident["write_usr"]["errno"] == errno.EROFS


def test_no_privileges_no_network_no_other_processes(
    attacker: Callable[..., TaskHandle], bystander: Bystander, driver: BwrapDriver, report: Any
) -> None:
    handle = attacker("ident")
    ident, samples = bystander.during(lambda: _call(handle, "/identity"))
    report("identity probe", samples)
    assert ident["uid"] != 0 and ident["gid"] != 0
    assert ident["CapEff"] == "0000000000000000" and ident["CapPrm"] == "0000000000000000"
    assert ident["NoNewPrivs"] == "1"
    assert ident["Seccomp"] == "2"
    assert ident["pid"] == 2 and ident["procs"] == [1, 2]  # its init and itself
    assert ident["ifaces"] == ["lo"]
    assert handle.state["uid"] != bystander.handle.state["uid"]


def test_outbound_tcp_and_udp_fail_and_egress_only_reaches_grants(
    attacker: Callable[..., TaskHandle], bystander: Bystander, ws: Workspace, report: Any
) -> None:
    import asyncio

    from apprt.runtime.egress import EgressProxy

    hits: list[str] = []
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    tcp_port, other_port, udp_port = (s.getsockname()[1] for s in (tcp, other, udp))

    def serve_tcp() -> None:  # echo one connection (the one through the proxy)
        tcp.settimeout(10)
        try:
            conn, _ = tcp.accept()
        except OSError:
            return
        hits.append("tcp")
        with conn:
            conn.sendall(conn.recv(100))

    config_env = {
        "ATTACK_TCP_PORT": str(tcp_port),
        "ATTACK_UDP_PORT": str(udp_port),
        "ATTACK_OTHER_PORT": str(other_port),
    }
    name = "netter"
    run_dir = ws.root / "run" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    proxy = EgressProxy(
        run_dir / "egress.sock", [f"network:127.0.0.1:{tcp_port}"], bandwidth_kbps=10_000
    )
    loop.run_until_complete(proxy.start())
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    server = threading.Thread(target=serve_tcp, daemon=True)
    server.start()
    try:
        handle = attacker(name, env=config_env)
        result, samples = bystander.during(lambda: _call(handle, "/net"))
        report("outbound tcp/udp", samples)
        assert not result["tcp"]["ok"] and result["tcp"]["errno"] in (
            errno.ECONNREFUSED,
            errno.ENETUNREACH,
        )
        try:
            data = udp.recv(100)
        except TimeoutError:
            data = b""
        assert data == b"", "a UDP datagram left the sandbox"
        granted = result["egress_granted"]
        assert granted["ok"], granted
        assert granted["value"] == [
            "HTTP/1.1 200 Connection Established",
            "hello through the proxy",
        ]
        assert result["egress_other"]["value"][0].startswith("HTTP/1.1 403")
        server.join(5)
        assert hits == ["tcp"]  # only the proxied connection reached the host
        assert proxy.connections == 1 and proxy.refused == 1
    finally:
        asyncio.run_coroutine_threadsafe(proxy.aclose(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(5)
        loop.close()
        for s in (tcp, other, udp):
            s.close()


def test_cannot_signal_or_ptrace_platform_processes(
    attacker: Callable[..., TaskHandle], bystander: Bystander, driver: BwrapDriver, report: Any
) -> None:
    zygote = json.loads((driver.zygote_dir / "zygote.json").read_text())["pid"]
    env = {
        "ATTACK_PLATFORM_PID": str(os.getpid()),
        "ATTACK_ZYGOTE_PID": str(zygote),
        "ATTACK_BYSTANDER_PID": str(bystander.handle.pid),
    }
    handle = attacker("signaller", env=env)
    result, samples = bystander.during(lambda: _call(handle, "/signal"))
    report("signal/ptrace platform", samples)
    for name in ("ATTACK_PLATFORM_PID", "ATTACK_ZYGOTE_PID", "ATTACK_BYSTANDER_PID"):
        attempt = result[name]
        assert not attempt["kill"]["ok"] and attempt["kill"]["errno"] == errno.ESRCH, attempt
        assert attempt["ptrace_attach"] == [-1, errno.EPERM], attempt
        assert attempt["process_vm_readv"] == [-1, errno.EPERM], attempt
    assert result["getppid"] == 1  # its parent is the instance's init, pid 1 of its namespace
    assert result["unshare_user"] == [-1, errno.EPERM]
    assert result["mount"] == [-1, errno.EPERM]
    assert not result["setuid0"]["ok"] and not result["chroot"]["ok"]
    assert driver.inspect(bystander.handle).running


def test_fork_bomb_is_capped_by_the_pids_limit(
    attacker: Callable[..., TaskHandle], bystander: Bystander, driver: BwrapDriver, report: Any
) -> None:
    handle = attacker("forker", resources=Resources(max_processes=24))
    result, samples = bystander.during(lambda: _call(handle, "/forkbomb"))
    report("fork bomb", samples)
    assert result["errno"] == errno.EAGAIN
    assert result["forked"] < 24
    stats = driver.stats(handle)
    events = driver.limit_events(handle)
    print(f"fork bomb: forked {result['forked']}, pids now {stats.pids}, events {events}")
    assert stats.pids <= 24
    assert events["pids"] >= 1  # recorded by the pids controller
    assert driver.inspect(handle).running  # limited, not killed: it still serves
    assert get(handle.ingress_socket)[0] == 200


def test_memory_past_the_limit_is_oom_killed_and_recorded(
    attacker: Callable[..., TaskHandle], bystander: Bystander, driver: BwrapDriver, report: Any
) -> None:
    handle = attacker("eater", resources=Resources(memory_mb=64))

    def attack() -> Any:
        try:
            get(handle.ingress_socket, "/eat", timeout=30)
        except (ConnectionError, OSError) as exc:  # the server died mid-request
            return exc
        return None

    _, samples = bystander.during(attack)
    report("memory", samples)
    result = driver.wait(handle, timeout=60)
    assert result is not None
    print(f"memory attack: {result}")
    assert result.oom_killed and result.signal == signal.SIGKILL, result
    assert "OOM" in result.reason
    assert driver.limit_events(handle)["memory"] >= 1


def test_cpu_spin_is_throttled_to_its_share(
    attacker: Callable[..., TaskHandle], bystander: Bystander, driver: BwrapDriver, report: Any
) -> None:
    share = 0.25
    handle = attacker("spinner", resources=Resources(cpu=share), env={"ATTACK_SPIN_S": "2"})
    before = driver.stats(handle).cpu_seconds
    start = time.monotonic()
    _, samples = bystander.during(lambda: _call(handle, "/spin"))
    wall = time.monotonic() - start
    used = driver.stats(handle).cpu_seconds - before
    report("cpu spin", samples)
    print(f"cpu spin: {used:.2f} s of CPU in {wall:.2f} s ({used / wall:.2f} cores, share {share})")
    assert used / wall <= share * 1.3


def test_disk_fills_stop_at_the_quota(
    attacker: Callable[..., TaskHandle], bystander: Bystander, driver: BwrapDriver, report: Any
) -> None:
    quota_mb = 16
    handle = attacker("filler", resources=Resources(storage_mb=quota_mb, memory_mb=128))
    result, samples = bystander.during(lambda: _call(handle, "/fill", timeout=60))
    report("disk fill", samples)
    used = driver.storage_bytes(handle)
    print(f"disk fill: {result}, volume holds {used} bytes")
    assert result["/data"]["errno"] in (errno.ENOSPC, errno.EFBIG)
    assert result["/data"]["written"] <= quota_mb << 20
    assert used is not None and used <= quota_mb << 20
    assert result["/tmp"]["errno"] == errno.ENOSPC  # the private tmpfs is capped too
    assert driver.inspect(handle).running
    assert get(handle.ingress_socket)[0] == 200
