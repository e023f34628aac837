"""Pieces both drivers use: the runner's command, environment, sockets, /proc readings."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import select
import signal
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from apprt.manifest import Resources
from apprt.runtime.drivers.base import DriverError, ExitResult, TaskConfig

RUNTIME_DIR = Path(__file__).resolve().parents[1]
RUNNER = RUNTIME_DIR / "runner.py"
#: What app code imports from the platform (``apprt.sdk``, standard library only); the
#: drivers put it on the app's ``sys.path`` (bwrap: mounted read-only, nothing else of apprt).
SDK_DIR = RUNTIME_DIR.parent / "sdk"
SECCOMP = RUNTIME_DIR / "seccomp.py"

#: Distributions the runner imports from the platform's environment (the ASGI server).
SERVER_DISTRIBUTIONS = ("uvicorn", "h11", "click", "websockets")

#: The only variables a sandbox gets besides the APPRT_* ones and the task's own.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

INGRESS = "ingress.sock"
PLATFORM = "platform.sock"

#: ``/proc/<pid>/stat`` clock ticks per second (start time field).
CLK_TCK = os.sysconf("SC_CLK_TCK")


def python_executable() -> str:
    """The real interpreter (no venv shim, no pyenv shim): launched directly."""
    return os.path.realpath(sys.executable)


def server_package_dirs() -> dict[str, Path]:
    """Where each of :data:`SERVER_DISTRIBUTIONS` lives (a package dir or a module file)."""
    found: dict[str, Path] = {}
    for name in SERVER_DISTRIBUTIONS:
        spec = importlib.util.find_spec(name)
        if spec is None:
            if name == "websockets":  # optional: WebSocket support
                continue
            raise DriverError(
                f"the ASGI server package {name!r} is not installed in the platform's "
                f"environment ({sys.prefix}); reinstall apprt (uv sync) so the runner can serve"
            )
        if spec.submodule_search_locations:
            found[name] = Path(next(iter(spec.submodule_search_locations)))
        elif spec.origin:
            found[name] = Path(spec.origin)
    return found


def task_env(config: TaskConfig, *, data_dir: str, platform_socket: str) -> dict[str, str]:
    """The scrubbed environment of a task: an allow-list, never the platform's own."""
    env = dict(BASE_ENV)
    env.update(
        HOME=data_dir,
        TMPDIR="/tmp",  # noqa: S108 - a private tmpfs in the bwrap sandbox
        APPRT_APP_DATA=data_dir,
        APPRT_PLATFORM_SOCKET=platform_socket,
        # beside it; only there for apps granted network:<host>:<port> (egress_proxies)
        APPRT_EGRESS_SOCKET=str(PurePosixPath(platform_socket).parent / "egress.sock"),
        APPRT_APP_ID=config.app_id,
        APPRT_APP_VERSION=config.version,
        APPRT_INSTANCE_ID=config.instance_id,
    )
    if config.org is not None:
        env["APPRT_ORG"] = config.org
    env.update(config.env)
    return env


def rlimits(resources: Resources, *, address_space: bool) -> dict[str, int]:
    """The rlimits every task runs under (soft = hard), from the manifest's resources.

    ``FSIZE`` caps one file at the storage quota (at least 16 MiB, so the log file
    the task appends to stays writable); ``NPROC`` is ``max_processes`` (threads
    count); ``AS`` (virtual memory, the process driver's only memory limit, where no
    cgroup does it) is the memory limit plus 512 MiB for the interpreter's mappings.
    """
    mib = 1 << 20
    limits = {
        "NOFILE": 1024,
        "NPROC": resources.max_processes,
        "FSIZE": max(resources.storage_mb, 16) * mib,
        "CORE": 0,
    }
    if address_space:
        limits["AS"] = (resources.memory_mb + 512) * mib
    return limits


def listen_ingress(run_dir: Path, *, mode: int = 0o600) -> socket.socket:
    """Create ``<run_dir>/ingress.sock`` (replacing a stale one) and listen on it.

    The platform creates the socket and hands the listening descriptor to the task, so
    the sandbox needs no write access to ``run_dir`` and the socket is owned by the
    platform (mode 0600: only the platform's gateway can connect).
    """
    path = run_dir / INGRESS
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
        else:
            raise DriverError(
                f"{path} exists and is not a socket; remove it (run_dir belongs to the driver)"
            )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(mode)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise DriverError(
            f"cannot listen on {path}: {exc}; check that {run_dir} is writable and the path "
            "is shorter than 108 bytes"
        ) from exc
    return sock


def wait_ready(fd: int, timeout: float) -> bool | None:
    """Wait for the runner's ready byte on ``fd``: True ready, False EOF (died), None timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            try:
                data = os.read(fd, 1)
            except InterruptedError:
                continue
            return bool(data)


def open_log(path: Path | None) -> int:
    """A descriptor for the task's stdout/stderr: ``path`` O_APPEND, or /dev/null."""
    if path is None:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def log_tail(path: Path | None, limit: int = 2000) -> str:
    if path is None:
        return "(no log_path configured)"
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace").strip() or "(log is empty)"
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    utime: int
    stime: int
    num_threads: int
    starttime: int


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` parsed, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        num_threads=int(fields[17]),
        starttime=int(fields[19]),
    )


def alive(pid: int, starttime: int | None) -> bool:
    """The process ``pid`` exists, is not a zombie, and is the one that started at
    ``starttime`` (guards against pid reuse)."""
    st = proc_stat(pid)
    if st is None or st.state in ("Z", "X"):
        return False
    return starttime is None or st.starttime == starttime


def session_members(sid: int) -> list[ProcStat]:
    """Every live process of session ``sid`` (a task started with ``setsid``)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        st = proc_stat(int(entry.name))
        if st is not None and st.session == sid and st.state not in ("Z", "X"):
            members.append(st)
    return members


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def exit_result(returncode: int, *, reason: str = "", oom_killed: bool = False) -> ExitResult:
    """An :class:`ExitResult` from a ``Popen.returncode`` (negative: killed by a signal)."""
    if returncode < 0:
        sig = -returncode
        with contextlib.suppress(ValueError):
            reason = reason or f"killed by {signal.Signals(sig).name}"
        return ExitResult(exit_code=None, signal=sig, oom_killed=oom_killed, reason=reason)
    return ExitResult(
        exit_code=returncode,
        signal=None,
        oom_killed=oom_killed,
        reason=reason or ("exited normally" if returncode == 0 else f"exit code {returncode}"),
    )


def kill_quietly(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def killpg_quietly(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def check_instance_id(instance_id: str) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", instance_id):
        raise DriverError(
            f"instance id {instance_id!r} is not [a-z0-9-] (1-63 characters, first a letter "
            "or digit); it names cgroups and directories, so the supervisor must generate it"
        )


def ensure_run_dir(run_dir: Path) -> None:
    if len(str(run_dir / INGRESS)) >= 108:
        raise DriverError(
            f"run_dir {run_dir} is too long for a Unix socket path (108 bytes with "
            f"'/{INGRESS}'); use a shorter run directory"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
