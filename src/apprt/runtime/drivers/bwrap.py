"""The ``bwrap`` driver: bubblewrap + cgroups + seccomp + rlimits, forked from a zygote.

Design (``docs/runtime.md`` has the figures)::

    platform (root)                                   host pid namespace
      │ control socket (SOCK_SEQPACKET, SCM_RIGHTS)
      └─ bwrap ── zygote   user ns (uid 0 = root, 1..N = sandbox uids), own mount,
                    │      net (lo only), ipc, uts, cgroup ns; base seccomp filter;
                    │      server stack imported once (uvicorn, h11, asyncio)
                    ├─ monitor (C1) ─ server (C2)   per instance: own mount, pid, net,
                    └─ monitor (C1) ─ server (C2)   ipc, uts, cgroup ns; cgroups;
                                                    uid/gid of the instance, no caps,
                                                    no_new_privs, instance seccomp

* **One zygote per driver** (per node), started lazily (or by :meth:`prepare`) in a
  bubblewrap sandbox that sees only the Python runtime (its prefix, ``/usr``), the
  ASGI server's packages and ``runner.py``, all read-only. It has no pid namespace
  of its own on purpose: if it dies, running instances do not (they are in their
  own pid namespaces, which are not nested under a zygote one).
* **Start = fork**: the platform opens detached mount trees of the app's code (ro),
  environment (ro), data directory (rw, noexec; its quota volume) and run directory
  (ro) with ``open_tree`` and passes them, with the ingress listening socket, the
  log file and a status socket, to the zygote. The forked monitor says hello on the
  status socket; the kernel tells us its host pid (``SCM_CREDENTIALS``) and we move
  it into the instance's cgroups *before* it builds namespaces or runs anything.
  The server (pid 1 of the instance's pid namespace) answers "ready" once uvicorn
  accepts requests; its host pid comes with that message.
* **Users**: the zygote's user namespace maps uid 0 to root (only the zygote and
  the monitors, our code, run as it) and uids ``1..uid_count`` to host uids
  ``uid_base..``; each instance runs as ``uid_base + hash(instance_id)``, so two
  instances never share a host uid (barring hash collisions) and none is root.
* **Recover**: tasks run in their own sessions, not as children of the platform; the
  handle keeps the server's pid and start time, the monitor's pid, the cgroup paths
  and the exit file the monitor writes, so a new driver object adopts them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from apprt.runtime import cgroups as cg
from apprt.runtime import seccomp
from apprt.runtime.drivers import _common as c
from apprt.runtime.drivers import _linux, _volume
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
from apprt.runtime.runner import RUNNER_VERSION  # a zygote of another version is replaced

if TYPE_CHECKING:
    from apprt.settings import Settings

log = structlog.get_logger(__name__)

BWRAP = "/usr/bin/bwrap"
SITE = "/opt/apprt/site"
RUNNER_IN = "/opt/apprt/runner.py"
ZYGOTE_DIR_IN = "/run/zygote"
MAX_MESSAGE = 1 << 16
DEFAULT_UID_BASE = 1_100_000_000
DEFAULT_UID_COUNT = 1_000_000
#: A data volume with less free space than this is full (a ``storage`` limit event).
STORAGE_FULL_BYTES = 128 * 1024


def _default_state_dir() -> Path:
    from apprt.settings import Settings

    return Settings().data_dir / "runtime" / "bwrap"


@dataclass
class _Slot:
    """A forked monitor waiting in its cgroup for an instance (the warm pool)."""

    sock: socket.socket
    monitor_pid: int
    group: cg.Cgroup


@dataclass
class _Live:
    """What this driver object holds for a task it started (not persisted)."""

    status: socket.socket  # our end of the status socket
    monitor_pid: int
    exit: ExitResult | None = None
    reading: threading.Lock = field(default_factory=threading.Lock)


class BwrapDriver(Driver):
    """Sandboxes with bubblewrap, cgroups, seccomp and rlimits; see the module docstring."""

    name = "bwrap"

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        cgroup_parent: str | None = None,
        bwrap: str = BWRAP,
        uid_base: int = DEFAULT_UID_BASE,
        uid_count: int = DEFAULT_UID_COUNT,
        start_timeout: float = 30.0,
        storage_quota: bool | None = None,
        tmp_mb: int = 16,
        warm_pool: int = 2,
    ) -> None:
        self.state_dir = (state_dir or _default_state_dir()).resolve()
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:8]
        self.cgroup_parent = cgroup_parent or f"apprt-{digest}"
        self.bwrap = bwrap
        self.uid_base = uid_base
        self.uid_count = uid_count
        self.start_timeout = start_timeout
        self.tmp_mb = tmp_mb
        self._storage_setting = storage_quota
        self._lock = threading.RLock()
        self._live: dict[str, _Live] = {}
        #: (instance, pid) -> (data volume full at the last look, times found full)
        self._storage_full: dict[tuple[str, int], tuple[bool, int]] = {}
        self._support: cg.CgroupSupport | None = None
        self._zygote_pid: int | None = None
        self.warm_pool = warm_pool
        self._pool: list[_Slot] = []
        self._refilling = False
        self._closed = False
        self._stale_checked = False
        self._refill_thread: threading.Thread | None = None

    # -- paths ----------------------------------------------------------------------
    @property
    def zygote_dir(self) -> Path:
        return self.state_dir / "zygote"

    @property
    def control_path(self) -> Path:
        return self.zygote_dir / "control.sock"

    def _exit_file(self, instance_id: str) -> Path:
        return self.state_dir / "tasks" / f"{instance_id}.exit"

    # -- description ----------------------------------------------------------------
    def cgroup_support(self) -> cg.CgroupSupport:
        if self._support is None:
            self._support = cg.detect()
        return self._support

    def _storage(self) -> tuple[bool, str]:
        ok, why = _volume.available()
        if self._storage_setting is False:
            return False, "disabled by configuration"
        return ok, why

    def capabilities(self) -> Capabilities:
        limits = self.cgroup_support().usable
        return Capabilities(
            filesystem_isolation=True,
            network_isolation=True,
            pid_isolation=True,
            seccomp=True,
            memory_limit=limits,
            cpu_limit=limits,
            pids_limit=limits,
            storage_quota=self._storage()[0],
            recover=True,
        )

    def fingerprint(self) -> Fingerprint:
        problems = []
        attributes: dict[str, str] = {}
        if not Path(self.bwrap).exists():
            problems.append(
                f"bubblewrap is not installed at {self.bwrap}: apt-get install bubblewrap "
                "(scripts/ensure-system-deps does it)"
            )
        else:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run(
                    [self.bwrap, "--version"], capture_output=True, text=True, timeout=5
                )
                attributes["bwrap.version"] = out.stdout.strip().split()[-1]
        if os.geteuid() != 0:
            problems.append(
                "the bwrap driver runs as root (it maps sandbox uids, mounts data volumes and "
                "manages cgroups); start the platform as root, or use the process driver "
                "for development"
            )
        try:
            attributes["seccomp.arch"] = seccomp.native_arch()
        except ValueError as exc:
            problems.append(str(exc))
        support = self.cgroup_support()
        attributes.update(support.attributes())
        if not support.usable:
            problems.append(f"cgroups: {support.detail}")
        storage, why = self._storage()
        attributes["storage_quota"] = why if storage else f"off ({why})"
        attributes["python"] = c.python_executable()
        if problems:
            return Fingerprint(False, "; ".join(problems), attributes)
        return Fingerprint(True, f"bwrap with {support.detail}", attributes)

    # -- zygote ---------------------------------------------------------------------
    def _request(
        self, message: dict[str, Any], fds: list[int] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(timeout)
            s.connect(str(self.control_path))
            payload = json.dumps(message).encode()
            if fds:
                socket.send_fds(s, [payload], fds)
            else:
                s.send(payload)
            reply = s.recv(MAX_MESSAGE)
        if not reply:
            raise DriverError("the zygote closed the connection without answering")
        result: dict[str, Any] = json.loads(reply)
        return result

    def _ping(self) -> int | None:
        try:
            reply = self._request({"op": "ping"}, timeout=2.0)
        except (OSError, ValueError, DriverError):
            return None
        if reply.get("version") != RUNNER_VERSION:
            return None
        return int(reply["pid"])

    def _ensure_zygote(self) -> None:
        with self._lock:
            if self._zygote_pid is not None and c.alive(self._zygote_pid, None):
                return
            pid = self._ping() if self.control_path.exists() else None
            if pid is None:
                self._kill_stale_zygote()
                pid = self._start_zygote()
            self._zygote_pid = pid

    def _kill_stale_zygote(self) -> None:
        info = self.zygote_dir / "zygote.json"
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(info.read_text())
            if c.alive(int(data["pid"]), data.get("starttime")):
                c.kill_quietly(int(data["pid"]), signal.SIGKILL)

    def _bind_args(self) -> list[str]:
        args: list[str] = []
        bound: set[str] = set()
        parents: set[str] = set()

        def ro(src: Path | str, dst: str | None = None, *, try_: bool = False) -> None:
            src_s = str(src)
            dst = dst or src_s
            if dst in bound:
                return
            bound.add(dst)
            # bwrap creates missing parents 0700, which the sandbox's users cannot enter
            for parent in reversed(Path(dst).parents):
                if str(parent) != "/" and str(parent) not in parents:
                    parents.add(str(parent))
                    args.extend(["--dir", str(parent)])
            args.extend(["--ro-bind-try" if try_ else "--ro-bind", src_s, dst])

        ro("/usr")
        for name in ("lib", "lib64", "lib32", "bin", "sbin"):
            host = Path("/") / name
            if host.is_symlink():
                args.extend(["--symlink", str(host.readlink()), f"/{name}"])
            elif host.is_dir():
                ro(host)
        prefix = Path(os.path.realpath(sys.base_prefix))
        exe_dir = Path(c.python_executable()).parent
        for path in (prefix, exe_dir):
            if not str(path).startswith("/usr/") and str(path) != "/usr":
                ro(path)
        for extra in ("/etc/ssl/certs", "/etc/ca-certificates", "/etc/localtime"):
            ro(extra, try_=True)
        for _name, path in sorted(c.server_package_dirs().items()):
            ro(path, f"{SITE}/{path.name}")
        ro(c.RUNNER, RUNNER_IN)
        # apprt.sdk for apps: a namespace package "apprt" holding only the sdk
        ro(c.SDK_DIR, f"{SITE}/apprt/sdk")
        return args

    def _start_zygote(self) -> int:
        self.zygote_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if len(str(self.control_path)) >= 108:
            raise DriverError(
                f"state_dir {self.state_dir} is too long for the zygote's control socket "
                "path (108 bytes); use a shorter state directory"
            )
        self.control_path.unlink(missing_ok=True)
        uid_map = f"0 0 1\n1 {self.uid_base} {self.uid_count}\n"
        ns_fd = _linux.user_namespace(uid_map, uid_map)
        sc_r, sc_w = os.pipe()
        program = seccomp.base_program()
        os.write(sc_w, program)
        os.close(sc_w)
        log_fd = c.open_log(self.zygote_dir / "zygote.log")
        spec = {"control": f"{ZYGOTE_DIR_IN}/control.sock", "server_paths": [SITE]}
        argv = [
            self.bwrap,
            "--userns", str(ns_fd),
            "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try",
            "--new-session",
            "--cap-add", "ALL",
            "--hostname", "apprt",
            "--clearenv",
            *[x for k, v in c.BASE_ENV.items() for x in ("--setenv", k, v)],
            *self._bind_args(),
            "--dir", "/run",
            "--bind", str(self.zygote_dir), ZYGOTE_DIR_IN,
            "--bind", "/proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",  # noqa: S108 - the sandbox's own tmpfs
            "--dir", "/app", "--dir", "/env", "--dir", "/data", "--dir", "/run/apprt",
            "--seccomp", str(sc_r),
            "--",
            c.python_executable(), "-I", "-S", "-B", RUNNER_IN, "zygote", json.dumps(spec),
        ]  # fmt: skip
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(ns_fd, sc_r),
                start_new_session=True,
                env={"PATH": c.BASE_ENV["PATH"]},
            )
        finally:
            for fd in (ns_fd, sc_r, log_fd):
                os.close(fd)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.control_path.exists():
                pid = self._ping()
                if pid is not None:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
                raise DriverError(
                    "the sandbox zygote did not start; its log "
                    f"({self.zygote_dir / 'zygote.log'}) ends with:\n"
                    f"{c.log_tail(self.zygote_dir / 'zygote.log')}"
                )
            time.sleep(0.005)
        st = c.proc_stat(pid)
        (self.zygote_dir / "zygote.json").write_text(
            json.dumps(
                {"pid": pid, "starttime": st.starttime if st else None, "bwrap_pid": proc.pid}
            )
        )
        # bwrap stays as the zygote's parent; reap it in the background when it exits
        threading.Thread(target=proc.wait, name="apprt-bwrap-reaper", daemon=True).start()
        log.info("sandbox zygote started", pid=pid, state_dir=str(self.state_dir))
        return pid

    def prepare(self, config: TaskConfig) -> None:
        """Start the zygote and fill the warm pool, so the next ``start`` is fast."""
        self._ensure_zygote()
        self._refill()

    def shutdown(self) -> None:
        """Stop the zygote (running instances keep running; the next start makes a new one)."""
        with self._lock:
            pid = self._ping() if self.control_path.exists() else None
            if pid is not None:
                with contextlib.suppress(OSError, ValueError, DriverError):
                    self._request({"op": "exit"}, timeout=2.0)
                deadline = time.monotonic() + 2
                while c.alive(pid, None) and time.monotonic() < deadline:
                    time.sleep(0.005)
                c.kill_quietly(pid, signal.SIGKILL)
            self._kill_stale_zygote()
            self._zygote_pid = None
        self.close()
        cg.remove_parent(self.cgroup_support(), self.cgroup_parent)

    def close(self) -> None:
        """Drop the warm pool and our status sockets; running tasks keep running."""
        with self._lock:
            self._closed = True
            refill = self._refill_thread
        if refill is not None and refill is not threading.current_thread():
            refill.join(15)  # it sees _closed and drops what it was making
        with self._lock:
            pool, self._pool = self._pool, []
            for live in self._live.values():
                live.status.close()
            self._live.clear()
        for slot in pool:
            slot.sock.close()  # the monitor reads EOF and exits
        for slot in pool:
            with contextlib.suppress(cg.CgroupError):
                slot.group.remove()

    # -- start ----------------------------------------------------------------------
    def _uid(self, instance_id: str) -> int:
        """The uid inside the zygote's user namespace (1..uid_count) of an instance."""
        return 1 + zlib.crc32(instance_id.encode()) % (self.uid_count - 1)

    def host_uid(self, instance_id: str) -> int:
        return self.uid_base + self._uid(instance_id) - 1

    def start(self, config: TaskConfig) -> TaskHandle:
        c.check_instance_id(config.instance_id)
        support = self.cgroup_support()
        if not support.usable:
            raise DriverError(
                f"cannot start {config.app_id} {config.version} with its resource limits: "
                f"{support.detail}"
            )
        c.ensure_run_dir(config.run_dir)
        uid = self._uid(config.instance_id)
        host_uid = self.host_uid(config.instance_id)
        for path in (config.code_dir, config.env_dir):
            if path is not None and not path.is_dir():
                raise DriverError(f"{path} is not a directory; the app is not installed there")
        self._check_readable(config.code_dir / "backend")

        slot = self._take_slot(config)
        group = slot.group
        oom_baseline = group.oom_kills()
        opened: list[int] = []
        listener: socket.socket | None = None
        mounted_here = False
        try:
            storage, _why = self._storage()
            if storage and config.resources.storage_mb > 0:
                mounted_here = not _volume.is_mounted(config.data_dir)
                _volume.ensure_mounted(
                    config.data_dir, config.resources.storage_mb, host_uid, host_uid
                )
            else:
                config.data_dir.mkdir(parents=True, exist_ok=True)
                os.chown(config.data_dir, host_uid, host_uid)
            exit_file = self._exit_file(config.instance_id)
            exit_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            exit_file.unlink(missing_ok=True)
            exit_fd = os.open(exit_file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            opened.append(exit_fd)
            listener = c.listen_ingress(config.run_dir)
            log_fd = c.open_log(config.log_path)
            opened.append(log_fd)
            roles = ["log", "listen", "exit"]
            fds = [log_fd, listener.fileno(), exit_fd]
            trees: list[tuple[str, Path, bool, bool]] = [
                ("code", config.code_dir, True, False),
                ("data", config.data_dir, config.resources.storage_mb == 0, True),
                ("run", config.run_dir, True, True),
            ]
            if config.env_dir is not None:
                trees.append(("env", config.env_dir, True, False))
            for role, path, readonly, noexec in trees:
                fd = _linux.open_tree_clone(path.resolve(), readonly=readonly, noexec=noexec)
                opened.append(fd)
                roles.append(role)
                fds.append(fd)
            spec = self._spawn_spec(config, uid, roles)
            socket.send_fds(slot.sock, [json.dumps({"ev": "go", "spec": spec}).encode()], fds)
        except BaseException:
            slot.sock.close()
            group.remove()
            if mounted_here:
                _volume.unmount(config.data_dir)
            raise
        finally:
            for fd in opened:
                os.close(fd)
            if listener is not None:
                listener.close()
        try:
            return self._finish_start(config, slot, oom_baseline, host_uid)
        except BaseException:
            if mounted_here:
                _volume.unmount(config.data_dir)
            raise
        finally:
            self._refill()  # after the start, so it does not compete with it for CPU

    # -- warm pool of monitors --------------------------------------------------------
    def _spawn_slot(self, name: str) -> _Slot:
        """Fork a monitor from the zygote and put it in a new cgroup ``name``."""
        self._ensure_zygote()
        group = cg.Cgroup.create(
            self.cgroup_support(), self.cgroup_parent, name, memory_mb=64, cpu=1.0, pids=8
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            try:
                reply = self._request({"op": "spawn"}, [theirs.fileno()])
            finally:
                theirs.close()
            if not reply.get("ok"):
                raise DriverError(f"the zygote refused to spawn: {reply.get('error')}")
            got = self._recv_event(ours, 10.0)
            if got is None or got[0].get("ev") != "hello" or got[1] <= 0:
                raise DriverError(
                    f"a sandbox monitor did not report in "
                    f"({'timeout' if got is None else got[0]}); zygote log: "
                    f"{c.log_tail(self.zygote_dir / 'zygote.log', 800)}"
                )
            monitor_pid = got[1]
            group.add(monitor_pid)
            with contextlib.suppress(OSError):  # the OOM killer picks the server, not this
                Path(f"/proc/{monitor_pid}/oom_score_adj").write_text("-1000")
            # now in its cgroup: it builds the namespaces and forks the server, which
            # then waits for "go"
            ours.send(json.dumps({"ev": "cgroup"}).encode())
        except BaseException:
            ours.close()
            group.remove()
            raise
        return _Slot(sock=ours, monitor_pid=monitor_pid, group=group)

    def _take_slot(self, config: TaskConfig) -> _Slot:
        """A monitor already in a cgroup, renamed to the instance and given its limits."""
        name = config.instance_id
        existing = cg.Cgroup.at(self.cgroup_support(), self.cgroup_parent, name)
        if existing.exists():
            if existing.procs():
                raise DriverError(
                    f"instance {name} is already running (pids {existing.procs()}); stop and "
                    "destroy it before starting it again"
                )
            existing.remove()
        slot: _Slot | None = None
        with self._lock:
            while self._pool:
                candidate = self._pool.pop()
                if c.alive(candidate.monitor_pid, None):
                    slot = candidate
                    break
                candidate.sock.close()
                candidate.group.remove()
        if slot is None:
            slot = self._spawn_slot(name)
        else:
            slot.group.rename(name)
        r = config.resources
        slot.group.set_limits(memory_mb=r.memory_mb, cpu=r.cpu, pids=r.max_processes)
        return slot

    def _remove_stale_pool(self) -> None:
        """Remove empty ``pool-*`` cgroups a previous platform process left (its monitors
        exited when it closed their sockets); live ones are not empty and stay."""
        support = self.cgroup_support()
        ours = {
            slot.group.paths.get("pids", slot.group.paths.get("unified")) for slot in self._pool
        }
        for base in dict.fromkeys(support.bases.values()):
            with contextlib.suppress(OSError):
                for entry in (base / self.cgroup_parent).iterdir():
                    if entry.name.startswith("pool-") and entry not in ours:
                        with contextlib.suppress(OSError):
                            entry.rmdir()

    def _refill(self) -> None:
        """Top the pool up to ``warm_pool`` monitors in a background thread."""
        if not self._stale_checked:
            self._stale_checked = True
            self._remove_stale_pool()
        with self._lock:
            if self.warm_pool <= 0 or self._refilling or len(self._pool) >= self.warm_pool:
                return
            self._refilling = True

        def fill() -> None:
            try:
                while True:
                    with self._lock:
                        if self._closed or len(self._pool) >= self.warm_pool:
                            return
                    slot = self._spawn_slot(f"pool-{os.urandom(6).hex()}")
                    with self._lock:
                        if self._closed:
                            slot.sock.close()
                            slot.group.remove()
                            return
                        self._pool.append(slot)
            except Exception as exc:  # keep serving without a pool; start() spawns directly
                log.warning("sandbox warm pool refill failed", error=str(exc))
            finally:
                with self._lock:
                    self._refilling = False

        self._refill_thread = threading.Thread(target=fill, name="apprt-bwrap-pool", daemon=True)
        self._refill_thread.start()

    def warm(self, timeout: float = 10.0) -> None:
        """Fill the warm pool now and wait until it is full (benchmarks, ``prepare``)."""
        self._ensure_zygote()
        self._refill()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._pool) >= self.warm_pool or not self._refilling:
                    if len(self._pool) >= self.warm_pool:
                        return
                    self._refill()
            time.sleep(0.002)

    def _check_readable(self, path: Path) -> None:
        mode = path.stat().st_mode if path.exists() else 0
        if path.exists() and not mode & 0o005 == 0o005:
            raise DriverError(
                f"{path} is not readable by the sandbox's user (mode {mode & 0o777:o}); the "
                f"app's files must be world-readable: chmod -R a+rX {path.parent}"
            )

    def _spawn_spec(self, config: TaskConfig, uid: int, roles: list[str]) -> dict[str, Any]:
        code_paths = ["/app/backend"]
        if config.env_dir is not None:
            code_paths.append("/env")
        env = c.task_env(config, data_dir="/data", platform_socket=f"/run/apprt/{c.PLATFORM}")
        env["APPRT_EGRESS_SOCKET"] = "/run/apprt/egress.sock"
        return {
            "fds": roles,
            "uid": uid,
            "gid": uid,
            "entry": config.entry,
            "code_paths": code_paths,
            "data_dir": "/data",
            "env": env,
            # the pids cgroup is the exact limit (and records refusals); NPROC is a backstop
            "rlimits": c.rlimits(config.resources, address_space=False)
            | {"NPROC": config.resources.max_processes + 16},
            "seccomp": seccomp.instance_program().hex(),
            "tmp_mb": min(self.tmp_mb, max(1, config.resources.memory_mb // 4)),
            "hostname": "app",
        }

    def _recv_event(self, sock: socket.socket, timeout: float) -> tuple[dict[str, Any], int] | None:
        """One message from the status socket and the sender's host pid; None on timeout."""
        readable, _, _ = select.select([sock], [], [], max(0.0, timeout))
        if not readable:
            return None
        msg, ancdata, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(12))
        if not msg:
            return {"ev": "eof"}, 0
        pid = 0
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iii", data[:12])[0]
        try:
            event = json.loads(msg)
        except ValueError:
            event = {"ev": "garbage"}
        return (event if isinstance(event, dict) else {"ev": "garbage"}), pid

    def _finish_start(
        self, config: TaskConfig, slot: _Slot, oom_baseline: int, host_uid: int
    ) -> TaskHandle:
        deadline = time.monotonic() + self.start_timeout
        sock, group = slot.sock, slot.group
        try:
            while True:
                got = self._recv_event(sock, deadline - time.monotonic())
                if got is None:
                    raise DriverError(
                        f"{config.app_id} {config.version} ({config.instance_id}) did not "
                        f"start within {self.start_timeout:.0f} s. Last log lines:\n"
                        f"{c.log_tail(config.log_path)}"
                    )
                event, pid = got
                if event.get("ev") == "ready":
                    server_pid = pid
                    break
                if event.get("ev") in ("exit", "eof"):
                    oom = group.oom_kills() > oom_baseline
                    raise DriverError(
                        f"{config.app_id} {config.version} ({config.instance_id}) exited "
                        f"before serving {config.entry!r} "
                        f"({'out of memory' if oom else self._describe(event)}). "
                        f"Last log lines:\n{c.log_tail(config.log_path)}"
                    )
        except BaseException:
            sock.close()
            group.remove()
            raise
        st = c.proc_stat(server_pid)
        # cgroups of a pool slot may have been used before: count from here
        limit_baseline = {"pids": group.pids_limited(), "cpu": group.throttled()}
        handle = TaskHandle(
            instance_id=config.instance_id,
            driver=self.name,
            pid=server_pid,
            started_at=time.time(),
            state={
                "run_dir": str(config.run_dir),
                "data_dir": str(config.data_dir),
                "starttime": st.starttime if st else None,
                "monitor_pid": slot.monitor_pid,
                "cgroup": group.to_state(),
                "oom_baseline": oom_baseline,
                "limit_baseline": limit_baseline,
                "exit_file": str(self._exit_file(config.instance_id)),
                "uid": host_uid,
                "log_path": str(config.log_path) if config.log_path else None,
            },
        )
        with self._lock:
            old = self._live.pop(config.instance_id, None)
            if old is not None:
                old.status.close()
            self._live[config.instance_id] = _Live(status=sock, monitor_pid=slot.monitor_pid)
        return handle

    @staticmethod
    def _describe(event: dict[str, Any]) -> str:
        if event.get("signal"):
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(int(event['signal'])).name}"
        if event.get("code") is not None:
            return f"exit code {event['code']}"
        return "no status"

    # -- observe --------------------------------------------------------------------
    def _group(self, handle: TaskHandle) -> cg.Cgroup:
        return cg.Cgroup.from_state(handle.state["cgroup"])

    def _result(self, handle: TaskHandle, event: dict[str, Any]) -> ExitResult:
        oom = self._group(handle).oom_kills() > int(handle.state.get("oom_baseline", 0))
        sig = event.get("signal")
        code = event.get("code")
        if sig:
            reason = self._describe(event)
            if oom:
                reason = "killed by the OOM killer: memory limit reached"
            return ExitResult(exit_code=None, signal=int(sig), oom_killed=oom, reason=reason)
        if code is None:
            return ExitResult(
                exit_code=None,
                signal=None,
                oom_killed=oom,
                reason="exited while no platform process watched it; status unknown",
            )
        return ExitResult(
            exit_code=int(code),
            signal=None,
            oom_killed=oom,
            reason="exited normally" if code == 0 else f"exit code {code}",
        )

    def _poll(self, handle: TaskHandle, timeout: float = 0.0) -> ExitResult | None:
        with self._lock:
            live = self._live.get(handle.instance_id)
        if live is not None and live.monitor_pid == handle.state.get("monitor_pid"):
            deadline = time.monotonic() + timeout
            while True:
                # Threads may wait on the same task: one reads the socket at a time, in
                # short slices, and every one sees the result as soon as it is known.
                if live.exit is not None:
                    return live.exit
                left = deadline - time.monotonic()
                if not live.reading.acquire(timeout=max(0.0, min(left, 0.05))):
                    if left <= 0:
                        return live.exit
                    continue
                try:
                    if live.exit is not None:
                        return live.exit
                    got = self._recv_event(live.status, max(0.0, min(left, 0.05)))
                    if got is not None:
                        event, pid = got
                        if event.get("ev") == "exit" and pid == live.monitor_pid:
                            live.exit = self._result(handle, event)
                        elif event.get("ev") == "eof":
                            live.exit = self._from_exit_file(handle)
                        # anything else (a stray message from the app) is ignored
                except OSError:  # closed by destroy/close in another thread
                    live.exit = live.exit or self._from_exit_file(handle)
                finally:
                    live.reading.release()
                if live.exit is None and time.monotonic() >= deadline:
                    return None
        deadline = time.monotonic() + timeout
        while True:
            if not c.alive(handle.pid, handle.state.get("starttime")):
                return self._from_exit_file(handle)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _from_exit_file(self, handle: TaskHandle) -> ExitResult:
        path = Path(handle.state["exit_file"])
        monitor = int(handle.state.get("monitor_pid", 0))
        deadline = time.monotonic() + 1.0
        while True:  # the monitor writes the file right after the server exits
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text() or "null")
                if isinstance(data, dict):
                    return self._result(handle, data)
            if not c.alive(monitor, None) or time.monotonic() > deadline:
                return self._result(handle, {})
            time.sleep(0.005)

    def inspect(self, handle: TaskHandle) -> TaskStatus:
        result = self._poll(handle)
        return TaskStatus(running=result is None, pid=handle.pid, exit=result)

    def wait(self, handle: TaskHandle, timeout: float | None = None) -> ExitResult | None:
        return self._poll(handle, 10**9 if timeout is None else timeout)

    def stats(self, handle: TaskHandle) -> TaskStats:
        if self._poll(handle) is not None:
            return TaskStats(memory_bytes=0, memory_limit_bytes=None, cpu_seconds=0.0, pids=0)
        s = self._group(handle).stats()
        return TaskStats(
            memory_bytes=s.memory_bytes,
            memory_limit_bytes=s.memory_limit_bytes,
            cpu_seconds=s.cpu_seconds,
            pids=s.pids,
        )

    def limit_events(self, handle: TaskHandle) -> dict[str, int]:
        """How often each limit struck this task since it started (until ``destroy``):
        ``memory`` OOM kills, ``pids`` forks refused, ``cpu`` periods throttled (cgroup
        counters, less their values at start), ``storage`` times the data volume was
        found full (free space under :data:`STORAGE_FULL_BYTES`) after it was not."""
        group = self._group(handle)
        base = handle.state.get("limit_baseline") or {}
        counts = {
            "memory": group.oom_kills() - int(handle.state.get("oom_baseline", 0)),
            "pids": group.pids_limited() - int(base.get("pids", 0)),
            "cpu": group.throttled() - int(base.get("cpu", 0)),
        }
        data = Path(handle.state.get("data_dir") or "/nonexistent")
        with contextlib.suppress(OSError):  # a mount point (st_dev differs): its volume
            if data.stat().st_dev != data.parent.stat().st_dev:
                st = os.statvfs(data)
                full = st.f_bavail * st.f_frsize < STORAGE_FULL_BYTES
                key = (handle.instance_id, handle.pid)
                with self._lock:
                    was_full, times = self._storage_full.get(key, (False, 0))
                    if full and not was_full:
                        times += 1
                    self._storage_full[key] = (full, times)
                counts["storage"] = times
        return {kind: max(0, n) for kind, n in counts.items()}

    def storage_bytes(self, handle: TaskHandle) -> int | None:
        """Bytes used on the instance's data volume (None without a quota volume)."""
        return _volume.usage_bytes(Path(handle.state["data_dir"]))

    # -- stop -----------------------------------------------------------------------
    def stop(self, handle: TaskHandle, timeout: float = 5.0) -> None:
        if self._poll(handle) is not None:
            return
        if c.alive(handle.pid, handle.state.get("starttime")):
            c.kill_quietly(handle.pid, signal.SIGTERM)
        if self.wait(handle, timeout) is None:
            # SIGKILL to pid 1 of the instance's pid namespace ends every process in it
            if c.alive(handle.pid, handle.state.get("starttime")):
                c.kill_quietly(handle.pid, signal.SIGKILL)
            if self.wait(handle, 5.0) is None:
                self._group(handle).kill(5.0)

    def destroy(self, handle: TaskHandle) -> None:
        if self._poll(handle) is None:
            self.stop(handle, timeout=2.0)
        group = self._group(handle)
        group.remove()
        with self._lock:
            live = self._live.pop(handle.instance_id, None)
            self._storage_full.pop((handle.instance_id, handle.pid), None)
        if live is not None:
            live.status.close()
        data_dir = handle.state.get("data_dir")
        if data_dir:
            _volume.unmount(Path(data_dir))
        run_dir = Path(handle.state["run_dir"])
        ingress = run_dir / c.INGRESS
        if ingress.is_socket():
            ingress.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only if empty: platform.sock is the platform's to remove
        Path(handle.state["exit_file"]).unlink(missing_ok=True)

    def recover(self, handle: TaskHandle) -> bool:
        if handle.driver != self.name:
            raise DriverError(
                f"handle of {handle.instance_id} belongs to the {handle.driver!r} driver, "
                f"not {self.name!r}; recover it with that driver"
            )
        return c.alive(handle.pid, handle.state.get("starttime"))


def from_settings(settings: Settings) -> BwrapDriver:
    """The driver the platform uses: its state under ``<data dir>/runtime/bwrap``."""
    return BwrapDriver(state_dir=settings.data_dir / "runtime" / "bwrap")


def remove_state(state_dir: Path) -> None:
    """Remove a driver's state directory (tests, uninstall of the platform)."""
    shutil.rmtree(state_dir, ignore_errors=True)
