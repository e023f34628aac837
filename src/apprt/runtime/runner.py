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

from __future__ import annotations

import json
import os
import sys
from typing import Any

#: uvicorn's code for "the app did not start".
STARTUP_FAILURE = 3

#: Modules of the server stack a zygote imports once so that its children do not.
SERVER_MODULES = (
    "asyncio",
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


def serve(spec: dict[str, Any]) -> int:
    """Run uvicorn on the inherited listening socket until told to stop; the exit code."""
    import contextlib
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

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if ready_fd is not None and not self.should_exit:
                try:
                    os.write(ready_fd, b"R")
                    os.close(ready_fd)
                except OSError:
                    pass  # nobody is listening (the platform restarted): keep serving

    try:
        from uvicorn.importer import import_from_string

        app = import_from_string(spec["entry"])
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


def zygote_main(spec: dict[str, Any]) -> int:
    raise NotImplementedError


if __name__ == "__main__":
    sys.exit(main(sys.argv))
