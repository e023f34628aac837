"""The ``process`` driver: a plain subprocess with rlimits. For development only.

There is no sandbox: the app runs as the platform's user, sees the host's files and
network. It only lowers rlimits (NOFILE, NPROC, FSIZE, CORE=0, AS for memory), runs
the interpreter in isolated mode with a scrubbed environment, and starts the task in
its own session so it survives a platform restart and can be found again.

Because of that it refuses apps whose :attr:`TaskConfig.trusted` is False unless the
operator allowed it (``ProcessDriver(allow_untrusted=True)`` or
``APPRT_ALLOW_UNTRUSTED_PROCESS_DRIVER=1``), and it logs a loud warning on every start
either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import structlog

from apprt.runtime.drivers import _common as c
from apprt.runtime.drivers.base import (
    Capabilities,
    Driver,
    DriverError,
    ExitResult,
    Fingerprint,
    TaskConfig,
    TaskHandle,
    TaskStats,
    TaskStatus,
)

log = structlog.get_logger(__name__)

ALLOW_ENV = "APPRT_ALLOW_UNTRUSTED_PROCESS_DRIVER"


def _env_allows_untrusted() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class ProcessDriver(Driver):
    """Runs each task as ``python -I -S -B runner.py serve SPEC`` in a new session."""

    name = "process"

    def __init__(self, *, allow_untrusted: bool | None = None, start_timeout: float = 30.0) -> None:
        self.allow_untrusted = (
            _env_allows_untrusted() if allow_untrusted is None else allow_untrusted
        )
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._exits: dict[str, ExitResult] = {}

    # -- description ----------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return Capabilities(
            filesystem_isolation=False,
            network_isolation=False,
            pid_isolation=False,
            seccomp=False,
            memory_limit=False,  # RLIMIT_AS only: virtual memory, not a real limit
            cpu_limit=False,
            pids_limit=False,  # RLIMIT_NPROC is per user, and root ignores it
            storage_quota=False,  # RLIMIT_FSIZE caps one file, not the directory
            recover=True,
        )

    def fingerprint(self) -> Fingerprint:
        try:
            dirs = c.server_package_dirs()
        except DriverError as exc:
            return Fingerprint(False, str(exc))
        return Fingerprint(
            True,
            "process driver: NO SANDBOX, for development only",
            {
                "python": c.python_executable(),
                "server": ",".join(sorted(dirs)),
                "allow_untrusted": str(self.allow_untrusted).lower(),
            },
        )

    # -- start ----------------------------------------------------------------------
    def start(self, config: TaskConfig) -> TaskHandle:
        c.check_instance_id(config.instance_id)
        if not config.trusted and not self.allow_untrusted:
            log.warning(
                "process driver refused an untrusted app",
                app=config.app_id,
                instance=config.instance_id,
            )
            raise DriverError(
                f"the process driver has no sandbox and {config.app_id} {config.version} is not "
                f"marked trusted; run it with the bwrap driver, or (development only) allow "
                f"untrusted apps with {ALLOW_ENV}=1 or ProcessDriver(allow_untrusted=True)"
            )
        log.warning(
            "process driver: running app WITHOUT A SANDBOX (no filesystem, network or pid "
            "isolation, no cgroup limits); development only, never in production",
            app=config.app_id,
            version=config.version,
            instance=config.instance_id,
            trusted=config.trusted,
        )
        c.ensure_run_dir(config.run_dir)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        listener = c.listen_ingress(config.run_dir)
        ready_r, ready_w = os.pipe()
        log_fd = c.open_log(config.log_path)
        code_paths = [str(config.code_dir / "backend")]
        if config.env_dir is not None:
            code_paths.append(str(config.env_dir))
        server_paths = sorted({str(p.parent) for p in c.server_package_dirs().values()})
        server_paths.append(str(c.SDK_DIR.parents[1]))  # apprt.sdk (no sandbox here anyway)
        spec = {
            "entry": config.entry,
            "code_paths": code_paths,
            "server_paths": server_paths,
            "data_dir": str(config.data_dir),
            "listen_fd": listener.fileno(),
            "ready_fd": ready_w,
            "rlimits": c.rlimits(config.resources, address_space=True),
        }
        env = c.task_env(
            config,
            data_dir=str(config.data_dir),
            platform_socket=str(config.run_dir / c.PLATFORM),
        )
        env["TMPDIR"] = str(config.data_dir)
        try:
            proc = subprocess.Popen(
                [c.python_executable(), "-I", "-S", "-B", str(c.RUNNER), "serve", json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(listener.fileno(), ready_w),
                env=env,
                cwd=config.data_dir,
                start_new_session=True,
            )
        except OSError as exc:
            raise DriverError(f"cannot start the runner for {config.instance_id}: {exc}") from exc
        finally:
            os.close(ready_w)
            os.close(log_fd)
            listener.close()
        try:
            ready = c.wait_ready(ready_r, self.start_timeout)
        finally:
            os.close(ready_r)
        if not ready:
            c.killpg_quietly(proc.pid, signal.SIGKILL)
            proc.wait()
            why = (
                "timed out"
                if ready is None
                else f"exited ({c.exit_result(proc.returncode).reason})"
            )
            raise DriverError(
                f"{config.app_id} {config.version} ({config.instance_id}) did not start: the "
                f"runner {why} before serving {config.entry!r}. Last log lines:\n"
                f"{c.log_tail(config.log_path)}"
            )
        st = c.proc_stat(proc.pid)
        handle = TaskHandle(
            instance_id=config.instance_id,
            driver=self.name,
            pid=proc.pid,
            started_at=time.time(),
            state={
                "run_dir": str(config.run_dir),
                "starttime": st.starttime if st else None,
                "log_path": str(config.log_path) if config.log_path else None,
                "uid": os.getuid(),
            },
        )
        with self._lock:
            self._children[config.instance_id] = proc
            self._exits.pop(config.instance_id, None)
        return handle

    # -- observe --------------------------------------------------------------------
    def _child(self, handle: TaskHandle) -> subprocess.Popen[bytes] | None:
        with self._lock:
            proc = self._children.get(handle.instance_id)
        return proc if proc is not None and proc.pid == handle.pid else None

    def _recorded_exit(self, handle: TaskHandle) -> ExitResult | None:
        with self._lock:
            return self._exits.get(handle.instance_id)

    def _record(self, handle: TaskHandle, result: ExitResult) -> ExitResult:
        with self._lock:
            self._exits[handle.instance_id] = result
        return result

    def _poll(self, handle: TaskHandle) -> ExitResult | None:
        proc = self._child(handle)
        if proc is not None:
            rc = proc.poll()
            return None if rc is None else self._record(handle, c.exit_result(rc))
        recorded = self._recorded_exit(handle)
        if recorded is not None:
            return recorded
        if c.alive(handle.pid, handle.state.get("starttime")):
            return None
        return self._record(
            handle,
            ExitResult(
                exit_code=None,
                signal=None,
                reason="exited while this platform process was not its parent; status unknown",
            ),
        )

    def inspect(self, handle: TaskHandle) -> TaskStatus:
        result = self._poll(handle)
        return TaskStatus(running=result is None, pid=handle.pid, exit=result)

    def wait(self, handle: TaskHandle, timeout: float | None = None) -> ExitResult | None:
        proc = self._child(handle)
        if proc is not None:
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self._record(handle, c.exit_result(rc))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = self._poll(handle)
            if result is not None:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def stats(self, handle: TaskHandle) -> TaskStats:
        if self._poll(handle) is not None:
            return TaskStats(memory_bytes=0, memory_limit_bytes=None, cpu_seconds=0.0, pids=0)
        members = c.session_members(handle.pid)
        memory = sum(c.rss_bytes(m.pid) for m in members)
        ticks = sum(m.utime + m.stime for m in members)
        return TaskStats(
            memory_bytes=memory,
            memory_limit_bytes=None,
            cpu_seconds=ticks / c.CLK_TCK,
            pids=sum(m.num_threads for m in members),
        )

    # -- stop -----------------------------------------------------------------------
    def stop(self, handle: TaskHandle, timeout: float = 5.0) -> None:
        if self._poll(handle) is not None:
            return
        c.kill_quietly(handle.pid, signal.SIGTERM)
        if self.wait(handle, timeout) is None:
            self._kill_session(handle)
            self.wait(handle, 5.0)
        self._kill_session(handle)  # leftovers the app started in its session

    def _kill_session(self, handle: TaskHandle) -> None:
        """SIGKILL every process of the task's session (it is its own session leader)."""
        if c.alive(handle.pid, handle.state.get("starttime")):
            c.killpg_quietly(handle.pid, signal.SIGKILL)
        started = handle.state.get("starttime") or 0
        for member in c.session_members(handle.pid):
            if member.pid != os.getpid() and member.starttime >= started:
                c.kill_quietly(member.pid, signal.SIGKILL)

    def destroy(self, handle: TaskHandle) -> None:
        if self._poll(handle) is None:
            self.stop(handle, timeout=2.0)
        self._kill_session(handle)
        run_dir = Path(handle.state["run_dir"])
        ingress = run_dir / c.INGRESS
        if ingress.is_socket():
            ingress.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only if empty: platform.sock is the platform's to remove
        with self._lock:
            self._children.pop(handle.instance_id, None)

    def recover(self, handle: TaskHandle) -> bool:
        if handle.driver != self.name:
            raise DriverError(
                f"handle of {handle.instance_id} belongs to the {handle.driver!r} driver, "
                f"not {self.name!r}; recover it with that driver"
            )
        return c.alive(handle.pid, handle.state.get("starttime"))
