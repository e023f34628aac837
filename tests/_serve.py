"""A real ``apprt serve`` as a subprocess on a loopback port: the one way the end-to-end
tests (and ``bench/``, through :mod:`tests.shell._platform`) start the platform.

The port is reserved, not just picked: :func:`reserved_port` binds a socket to a free
port (``SO_REUSEADDR``, never listening) and keeps it bound while the server runs.
``apprt serve`` (uvicorn binds with ``SO_REUSEADDR`` too) can listen on it, but no
other process can be handed that port in between: neither another ``bind(0)`` nor an
outgoing connection's ephemeral port. Picking a port, closing the socket and hoping
it is still free when the server binds it a second later is a race on a shared machine
(and, worse, the health check could be answered by somebody else's server).

The timeouts are guards against hanging, not performance bounds: on a loaded 2-core CI
machine a cold ``python -m apprt serve`` can take many seconds to answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

#: How long ``apprt serve`` may take to answer ``/healthz`` before the test fails.
STARTUP_TIMEOUT = 120.0
#: How long a SIGTERM'd ``apprt serve`` may take to shut down before it is killed.
STOP_TIMEOUT = 30.0


class ServeError(RuntimeError):
    """``apprt serve`` exited or never answered; the message carries its log."""


def environment(
    extra: Mapping[str, str] | None = None, *, inherit_apprt: bool = True
) -> dict[str, str]:
    """This process' environment (without its ``APPRT_*`` variables unless
    ``inherit_apprt``) updated with ``extra``."""
    base = {k: v for k, v in os.environ.items() if inherit_apprt or not k.startswith("APPRT_")}
    return {**base, **(extra or {})}


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A free loopback port, kept from every other process until the block ends."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        port: int = holder.getsockname()[1]
        yield port


class ServeProcess:
    """``python -m apprt serve --port PORT --data-dir DATA_DIR`` with ``env`` (another
    command that takes those options and answers ``/healthz``: ``command``).

    Its output is appended to ``log`` (or discarded when ``log`` is None). Without a
    ``port``, a port is reserved for the life of this object (see the module's doc);
    with one, reserving it is the caller's business (:func:`reserved_port`).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str],
        log: Path | None = None,
        port: int | None = None,
        new_session: bool = False,
        command: Sequence[str] = ("serve",),
    ) -> None:
        self.data_dir = data_dir
        self.log = log
        self._reservation = contextlib.ExitStack()
        if port is None:
            port = self._reservation.enter_context(reserved_port())
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_offset = log.stat().st_size if log is not None and log.exists() else 0
        argv = [sys.executable, "-m", "apprt", *command, "--port", str(port)]
        argv += ["--data-dir", str(data_dir)]
        out: IO[bytes] | int
        with contextlib.ExitStack() as files:
            if log is None:
                out, err = subprocess.DEVNULL, subprocess.DEVNULL
            else:
                out, err = files.enter_context(log.open("ab")), subprocess.STDOUT
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err,
                    env=dict(env),
                    start_new_session=new_session,
                )
            except BaseException:
                self._reservation.close()
                raise

    def output(self, tail: int | None = None) -> str:
        """What the server printed since it started (the last ``tail`` characters)."""
        if self.log is None:
            return "(output discarded)"
        with contextlib.suppress(FileNotFoundError):
            text = self.log.read_text(errors="replace")[self.log_offset :]
            return text[-tail:] if tail else text
        return ""

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until ``/healthz`` answers 200; :class:`ServeError` if the process exits
        first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServeError(
                    f"apprt serve exited with {self.proc.returncode}:\n{self.output(3000)}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=5.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ServeError(f"apprt serve not up after {timeout:g} s:\n{self.output(3000)}")
            time.sleep(0.05)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait up to ``timeout`` for the exit status (which it returns);
        ``subprocess.TimeoutExpired`` if it does not exit (see :meth:`close`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server for good: SIGTERM, SIGKILL if it is still there after
        ``timeout``; then give up the port."""
        try:
            if self.proc.poll() is None:
                try:
                    self.terminate(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            self._reservation.close()


@contextlib.contextmanager
def serving(
    data_dir: Path,
    *,
    env: Mapping[str, str],
    log: Path | None = None,
    port: int | None = None,
    new_session: bool = False,
    command: Sequence[str] = ("serve",),
) -> Iterator[ServeProcess]:
    """A healthy :class:`ServeProcess`, closed (SIGTERM, then SIGKILL) on the way out."""
    server = ServeProcess(
        data_dir, env=env, log=log, port=port, new_session=new_session, command=command
    )
    try:
        server.wait_healthy()
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def running_server(
    data_dir: Path,
    log: Path,
    *,
    command: Sequence[str] = ("serve",),
    inherit_apprt: bool = True,
    **env: str,
) -> Iterator[str]:
    """``apprt serve`` (or ``command``; this environment updated with ``env``, see
    :func:`environment`) for the block; its URL.

    Leaving the block normally also checks the graceful shutdown: SIGTERM ends it with
    status 0 (or -SIGTERM: uvicorn re-raises the signal it caught) and the log says so.
    """
    import pytest

    server = ServeProcess(
        data_dir, env=environment(env, inherit_apprt=inherit_apprt), log=log, command=command
    )
    try:
        try:
            server.wait_healthy()
        except ServeError as exc:
            pytest.fail(str(exc))
        yield server.url
        assert server.terminate() in (0, -signal.SIGTERM), server.output()
        assert "Application shutdown complete" in server.output()
    finally:
        server.close()
