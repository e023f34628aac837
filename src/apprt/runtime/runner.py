"""The in-sandbox runner: what runs inside every sandbox, serving the app's ASGI entry.

This file is executed as a *script* by the sandboxed interpreter
(``python -I -S -B runner.py MODE SPEC``), never imported from ``apprt``: it uses the
standard library only at import time, plus the ASGI server (uvicorn, h11) loaded
from the directories the spec names. It writes nothing outside the app's data
directory (``-B``: no bytecode caches; the ingress socket is created by the platform
and handed over as a file descriptor).

Modes:

``serve SPEC_JSON``
    Serve one instance (the process driver, and the cold path of the bwrap driver):
    set rlimits, put ``backend/`` of the code directory, the environment directory
    and the server's directories on ``sys.path``, import the app, run uvicorn on the
    listening socket passed as ``spec["listen_fd"]`` (the platform created
    ``<run_dir>/ingress.sock``, so nothing in the sandbox needs write access there),
    and write one byte to ``spec["ready_fd"]`` once the app's lifespan startup is done
    and it accepts requests.

``zygote SPEC_JSON``
    The fork server of the bwrap driver (see :mod:`apprt.runtime.drivers.bwrap` and
    ``docs/runtime.md``): import the server stack once, then fork one child per
    instance on request; each child builds its own namespaces and serves.

The app sees ``APPRT_APP_DATA`` (its writable data directory, also the working
directory) and ``APPRT_PLATFORM_SOCKET`` (the platform API socket); both are set in
the environment by the driver.

Spec keys (JSON object): ``entry`` ("module:attr"), ``code_paths`` (list, searched
first), ``server_paths`` (where uvicorn and h11 live, searched last), ``data_dir``,
``listen_fd``, ``ready_fd``, ``rlimits`` (``{"NOFILE": n, ...}``, soft=hard),
``env`` (extra variables), ``log_level``.
"""

# ruff: noqa: PTH101, PTH108, PTH110, PTH116, PTH208, S108
# (os.path rather than pathlib: the runner keeps its imports minimal)
from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

#: uvicorn's code for "the app did not start".
STARTUP_FAILURE = 3

#: Modules of the server stack a zygote imports once so that its children do not.
SERVER_MODULES = (
    "asyncio",
    "resource",
    "traceback",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.websockets_sansio_impl",
    "uvicorn.protocols.utils",
    "h11",
)


def set_rlimits(limits: dict[str, int]) -> None:
    """Lower this process's rlimits (soft = hard = value); names as in ``resource``."""
    import resource

    for name, value in limits.items():
        which = getattr(resource, f"RLIMIT_{name}")
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and value > hard:
            value = hard
        resource.setrlimit(which, (value, value))


def set_paths(spec: dict[str, Any]) -> None:
    sys.path[:] = [*spec.get("code_paths", []), *sys.path, *spec.get("server_paths", [])]


def preload_server() -> None:
    """Import the server stack (what a zygote does once before forking)."""
    import importlib

    for name in SERVER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # optional protocol (e.g. websockets) not installed
            if name.startswith("uvicorn.protocols.websockets"):
                continue
            raise


def _websocket_impl() -> str:
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return "none"
    return "websockets-sansio"


#: Where the platform calls the app's lifecycle hooks (``[backend.hooks]``) inside its
#: sandbox. The gateway refuses every ``/.apprt/`` path, and a call must carry the
#: instance's identity key, which only the platform and the app hold.
HOOK_PATH = "/.apprt/hook"


def _with_hook_door(app: Any) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == HOOK_PATH:
            await _run_hook(scope, receive, send)
        else:
            await app(scope, receive, send)

    return wrapped


async def _run_hook(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``POST {"hook": "module:function", "context": {...}}``: run it, answer its result."""
    import asyncio
    import hmac
    import inspect

    from uvicorn.importer import import_from_string

    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    key = dict(scope.get("headers", [])).get(b"x-apprt-hook-key", b"").decode("latin-1")
    expected = os.environ.get("APPRT_IDENTITY_KEY", "")
    if scope["method"] != "POST" or not expected or not hmac.compare_digest(key, expected):
        status, payload = 404, {"error": "not found"}
    else:
        try:
            request = json.loads(body)
            function = import_from_string(request["hook"])
            context = request.get("context", {})
            if inspect.iscoroutinefunction(function):
                result = await function(context)
            else:  # a blocking hook must not stall the app's event loop
                result = await asyncio.to_thread(function, context)
            status, payload = 200, {"result": result}
        except Exception as exc:
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
    data = json.dumps(payload, default=str).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def serve(spec: dict[str, Any]) -> int:
    """Run uvicorn on the inherited listening socket until told to stop; the exit code."""
    import asyncio
    import signal
    from collections.abc import Iterator

    import uvicorn.config
    import uvicorn.server

    _EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

    ready_fd: int | None = spec.get("ready_fd")

    class _Server(uvicorn.server.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises SIGTERM after a graceful shutdown, so the process would
            # die "killed by SIGTERM"; exit 0 instead: stopping on request is normal.
            previous = {s: signal.signal(s, self.handle_exit) for s in _EXIT_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        _exit_event: asyncio.Event | None = None
        _loop: asyncio.AbstractEventLoop | None = None

        async def main_loop(self) -> None:
            # uvicorn polls should_exit 10 times a second; an idle instance should not
            # wake that often (density), and a stop request should not wait for a poll.
            self._loop = asyncio.get_running_loop()
            self._exit_event = asyncio.Event()
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 10) % 864000  # one tick per second: Date refreshed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exit_event.wait(), 1.0)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if self._loop is not None and self._exit_event is not None:
                self._loop.call_soon_threadsafe(self._exit_event.set)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if ready_fd is not None and not self.should_exit:
                # nobody listening (the platform restarted): keep serving
                with contextlib.suppress(OSError):
                    os.write(ready_fd, b'{"ev": "ready"}')
                    os.close(ready_fd)

    try:
        from uvicorn.importer import import_from_string

        app = _with_hook_door(import_from_string(spec["entry"]))
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        print(
            f"apprt runner: cannot import the app entry {spec['entry']!r}: {exc}", file=sys.stderr
        )
        return STARTUP_FAILURE
    config = uvicorn.config.Config(
        app,
        fd=spec["listen_fd"],
        lifespan="auto",
        loop="asyncio",
        http="h11",
        ws=_websocket_impl(),
        log_config=None,
        log_level=spec.get("log_level", "warning"),
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=spec.get("graceful_timeout", 5),
    )
    _configure_logging(spec.get("log_level", "warning"))
    server = _Server(config)
    server.run()
    if not server.started:
        return STARTUP_FAILURE
    return 0


def _configure_logging(level: str) -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def prepare_process(spec: dict[str, Any]) -> None:
    """Everything before serving: rlimits, paths, environment, working directory."""
    set_rlimits(spec.get("rlimits", {}))
    set_paths(spec)
    os.environ.update(spec.get("env", {}))
    data_dir = spec.get("data_dir")
    if data_dir:
        os.chdir(data_dir)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("serve", "zygote"):
        print("usage: runner.py serve|zygote SPEC_JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[2])
    if argv[1] == "serve":
        prepare_process(spec)
        return serve(spec)
    return zygote_main(spec)


# ---------------------------------------------------------------------------------------
# The zygote (fork server) of the bwrap driver.
#
# It runs inside a bubblewrap sandbox (a user namespace in which it is uid 0 with
# capabilities, its own mount, net, ipc and uts namespaces, the base seccomp filter),
# imports the server stack once, and listens on a SOCK_SEQPACKET control socket. A
# "spawn" request carries the instance's spec and descriptors; for each the zygote
# forks a *monitor* (C1) which
#
#   1. says hello on its status socket (the platform learns its host pid from
#      SCM_CREDENTIALS and moves it into a cgroup), and once acknowledged
#   2. unshares mount, pid, net, ipc, uts and cgroup namespaces, makes mounts private,
#      mounts a tmpfs on /tmp, brings lo up, and forks the *server* (C2), pid 1 of the
#      new pid namespace, which mounts its /proc. Both then wait in the warm pool.
#   3. On "go" (the instance's spec and descriptors), the server attaches the detached
#      mount trees the platform opened (code, env, data, run directory) with
#      move_mount, switches to the instance's uid and gid (dropping every capability),
#      sets no_new_privs, loads the instance seccomp filter and rlimits, then forks:
#      the child imports the app and serves it on the inherited ingress socket; the
#      parent stays pid 1 as the instance's *init*, reaping the processes orphaned
#      into the namespace (unreaped, their zombies would count against the pids
#      limit) and passing stop signals on to the server;
#   4. the monitor waits for pid 1 and reports the server's exit (status socket + file).
#
# No app code ever runs in the zygote or the monitor.
# ---------------------------------------------------------------------------------------

RUNNER_VERSION = "4"  # the bwrap driver's; 2: apprt.sdk mounted; 3: the hook door; 4: init

_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_SYS_MOVE_MOUNT = 429
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_MAX_MESSAGE = 1 << 16


class _Libc:
    """The few system calls Python 3.11's ``os`` lacks, through ctypes."""

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            err = self.ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def unshare(self, flags: int) -> None:
        self._check(self.libc.unshare(self.ctypes.c_int(flags)), "unshare")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        enc = self._enc
        result = self.libc.mount(
            enc(source), enc(target), enc(fstype), self.ctypes.c_ulong(flags), enc(data)
        )
        self._check(result, f"mount {target}")

    def set_name(self, name: str) -> None:
        """The process name ``ps``/``top`` show (``comm``, 15 bytes)."""
        self.libc.prctl(self.ctypes.c_int(15), name.encode()[:15], 0, 0, 0)  # PR_SET_NAME

    def umount(self, target: str) -> None:
        self._check(self.libc.umount2(target.encode(), self.ctypes.c_int(2)), f"umount {target}")

    def move_mount(self, fd: int, target: str) -> None:
        c = self.ctypes
        result = self.libc.syscall(
            c.c_long(_SYS_MOVE_MOUNT), c.c_int(fd), b"", c.c_int(_AT_FDCWD),
            target.encode(), c.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
        )  # fmt: skip
        self._check(result, f"move_mount {target}")

    def seccomp(self, program: bytes) -> None:
        import ctypes

        c = ctypes

        class _Fprog(ctypes.Structure):
            _fields_ = [("len", c.c_ushort), ("filter", c.c_void_p)]

        buf = c.create_string_buffer(program, len(program))
        prog = _Fprog(len(program) // 8, c.addressof(buf))
        zero = c.c_ulong(0)
        self._check(
            self.libc.prctl(c.c_int(_PR_SET_NO_NEW_PRIVS), c.c_ulong(1), zero, zero, zero),
            "no_new_privs",
        )
        self._check(
            self.libc.prctl(
                c.c_int(_PR_SET_SECCOMP), c.c_ulong(_SECCOMP_MODE_FILTER), c.byref(prog), zero, zero
            ),
            "seccomp",
        )

    @staticmethod
    def _enc(value: str | None) -> bytes | None:
        return None if value is None else value.encode()


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, siocgifflags, ifreq))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


def _close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _send(sock_fd: int, message: dict[str, Any]) -> None:
    # the platform is gone (restarting): it reads the exit file instead
    with contextlib.suppress(OSError):
        os.write(sock_fd, json.dumps(message).encode())


def _monitor(status: int, libc: _Libc) -> int:
    """C1: join the cgroup, build the namespaces, fork the server, report its exit.

    Everything that does not depend on the instance happens while this monitor waits in
    the warm pool: namespaces, private mounts, tmpfs, loopback, the server forked as pid 1
    of the new pid namespace with its /proc. What depends on the instance (mount trees,
    uid, limits, the app) arrives with "go", which the *server* reads.
    """
    import signal
    import socket

    libc.set_name("apprt-monitor")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _send(status, {"ev": "hello"})
    with socket.socket(fileno=os.dup(status)) as sock:
        try:
            ack, received = _recv(sock)  # sent once the platform moved us into a cgroup
        except (OSError, ValueError):
            return 70
    for fd in received:
        with contextlib.suppress(OSError):
            os.close(fd)
    if ack.get("ev") != "cgroup":
        return 70  # the platform aborted (or vanished)

    libc.unshare(
        _CLONE_NEWNS
        | _CLONE_NEWPID
        | _CLONE_NEWNET
        | _CLONE_NEWIPC
        | _CLONE_NEWUTS
        | _CLONE_NEWCGROUP
    )
    libc.mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
    libc.umount("/run/zygote")  # the zygote's control socket
    libc.mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "size=16m,mode=1777")
    socket.sethostname("app")
    _loopback_up()

    # the server hands us the exit-file descriptor it receives with "go"
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        code = 71
        try:
            mine.close()
            code = _server(status, theirs, libc)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    theirs.close()
    try:
        _, exit_fds = _recv(mine)
    except (OSError, ValueError):
        exit_fds = []
    while True:
        try:
            _, wstatus = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    result = {"ev": "exit", **_exit_status(wstatus)}
    try:
        # The init's report of the server's own exit, when it lived to send it (a
        # SIGKILLed init did not: then its status is the instance's).
        mine.setblocking(False)
        report, _ = _recv(mine)
        if report.get("ev") == "server-exit":
            result.update(code=report.get("code"), signal=report.get("signal"))
    except (OSError, ValueError):
        pass
    mine.close()
    for fd in exit_fds:
        with contextlib.suppress(OSError):
            os.write(fd, json.dumps(result).encode())
    _send(status, result)
    return 0


def _server(status: int, monitor: Any, libc: _Libc) -> int:
    """C2: pid 1 of the instance. Mounts its /proc, waits (in the pool) for "go", attaches
    the instance's mount trees, drops every privilege, then imports the app and serves."""
    import signal
    import socket

    libc.set_name("apprt-app")
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    libc.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
    for cover in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"):
        if os.path.exists(cover):
            libc.mount(cover, cover, None, _MS_BIND | _MS_REC, None)
            libc.mount(
                None,
                cover,
                None,
                _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                None,
            )

    with socket.socket(fileno=os.dup(status)) as sock:
        try:
            go, received = _recv(sock)
        except (OSError, ValueError):
            return 70
    if go.get("ev") != "go" or len(go["spec"]["fds"]) != len(received):
        return 70  # the pool was drained (or the platform vanished)
    spec: dict[str, Any] = go["spec"]
    fds = dict(zip(spec["fds"], received, strict=True))
    exit_fd = fds.pop("exit", None)
    if exit_fd is not None:
        socket.send_fds(monitor, [b"exit"], [exit_fd])
        os.close(exit_fd)
    try:
        for role, target in (
            ("code", "/app"),
            ("env", "/env"),
            ("data", "/data"),
            ("run", "/run/apprt"),
        ):
            if role in fds:
                libc.move_mount(fds[role], target)
                os.close(fds.pop(role))
        tmp_mb = int(spec.get("tmp_mb", 16))
        libc.mount(
            None, "/tmp", None, _MS_REMOUNT | _MS_NOSUID | _MS_NODEV, f"size={tmp_mb}m,mode=1777"
        )
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(fds["log"], 1)
        os.dup2(fds["log"], 2)
    except BaseException:
        import traceback

        with contextlib.suppress(OSError, KeyError):
            os.write(fds["log"], traceback.format_exc().encode())
        return 74
    listen = fds["listen"]
    _close_fds_except({0, 1, 2, listen, status, monitor.fileno()})
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115

    uid, gid = int(spec["uid"]), int(spec["gid"])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # from uid 0: every capability is gone
    libc.seccomp(bytes.fromhex(spec["seccomp"]))

    os.environ.clear()
    os.environ.update(spec.get("env", {}))
    set_rlimits(spec.get("rlimits", {}))
    sys.path[:0] = spec.get("code_paths", [])
    sys.argv = ["apprt-runner"]
    os.chdir(spec.get("data_dir", "/data"))
    spec = dict(spec, listen_fd=listen, ready_fd=status)
    return _init(spec, monitor)


def _init(spec: dict[str, Any], monitor: Any) -> int:
    """Pid 1 of the instance: fork the server, then reap every child until it exits.

    Processes an app leaves behind (a daemonized helper, a double fork) are reparented
    to pid 1 when their parent exits; a server as pid 1 would never reap them. The init
    forwards SIGTERM, SIGINT and SIGHUP to the server (a stop), ends with it (the kernel
    then kills whatever is left in the namespace) and reports the server's exit status
    to the monitor, so a crash reads the same as without an init.
    """
    import signal

    pid = os.fork()
    if pid == 0:
        code = 71
        try:
            monitor.close()
            import gc

            gc.unfreeze()
            code = serve(spec)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(spec["listen_fd"])
    os.close(spec["ready_fd"])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    while True:
        try:
            child, wstatus = os.wait()  # retried by Python after a signal handler ran
        except ChildProcessError:
            return 0
        if child == pid:
            break
    status = _exit_status(wstatus)
    with contextlib.suppress(OSError):
        monitor.send(json.dumps({"ev": "server-exit", **status}).encode())
    return status["code"] if status["code"] is not None else 128 + (status["signal"] or 0)


def _exit_status(wstatus: int) -> dict[str, int | None]:
    return {
        "code": os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None,
        "signal": os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None,
    }


def _recv(conn: Any) -> tuple[dict[str, Any], list[int]]:
    import array
    import socket

    fds = array.array("i")
    msg, ancdata, _flags, _addr = conn.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(64 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return (json.loads(msg) if msg else {}), list(fds)


def zygote_main(spec: dict[str, Any]) -> int:
    """Serve spawn requests on the control socket until told to exit."""
    import gc
    import signal
    import socket

    set_paths(spec)
    preload_server()
    libc = _Libc()
    libc.set_name("apprt-zygote")
    path = spec["control"]
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)

    def reap(_signum: int, _frame: Any) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    gc.collect()
    gc.freeze()  # keep the heap's pages shared with every forked child
    print(f"apprt zygote {RUNNER_VERSION} ready (pid {os.getpid()})", file=sys.stderr, flush=True)
    import select

    inode = os.stat(path).st_ino
    while True:
        readable, _, _ = select.select([listener], [], [], 5.0)
        if not readable:
            # The platform removed our state directory (or a new zygote replaced us):
            # nobody can reach us any more, so go (instances do not depend on us).
            try:
                if os.stat(path).st_ino != inode:
                    return 0
            except OSError:
                return 0
            continue
        try:
            conn, _ = listener.accept()
        except (InterruptedError, BlockingIOError):
            continue
        with conn:
            try:
                request, fds = _recv(conn)
            except (OSError, ValueError):
                continue
            reply = _handle(request, fds, listener, conn, libc)
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                conn.send(json.dumps(reply).encode())
            if request.get("op") == "exit":
                return 0


def _handle(
    request: dict[str, Any], fds: list[int], listener: Any, conn: Any, libc: _Libc
) -> dict[str, Any]:
    op = request.get("op")
    if op in ("ping", "exit"):
        return {"ok": True, "pid": os.getpid(), "version": RUNNER_VERSION}
    if op != "spawn":
        return {"ok": False, "error": f"unknown op {op!r}"}
    if len(fds) != 1:
        return {"ok": False, "error": f"spawn takes one descriptor (status), got {len(fds)}"}
    status = fds[0]
    pid = os.fork()
    if pid == 0:
        code = 72
        try:
            listener.close()
            conn.close()
            _close_fds_except({0, 1, 2, status})
            code = _monitor(status, libc)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return {"ok": True, "pid": pid}


if __name__ == "__main__":
    sys.exit(main(sys.argv))
