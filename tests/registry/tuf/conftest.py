"""Fixtures of the TUF tests: a real ``apprt serve`` on a loopback port, an in-process
handle on the same repository (to publish targets without the registry's upload
pipeline), a stock ngclient ``Updater`` factory, and a loopback "mirror" that serves
the server's files except those it is told to substitute (rollback, freeze attacks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from tuf.ngclient import Updater

from apprt.blobs.local import LocalBlobStore
from apprt.db.engine import make_engine, session_factory, session_scope
from apprt.registry.tuf.config import TufConfig
from apprt.registry.tuf.repository import TufRepository
from apprt.settings import Settings

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Registry:
    """A running ``apprt serve`` and an in-process handle on its TUF repository."""

    base: str
    data_dir: Path
    engine: Engine
    sessions: sessionmaker[Session]
    repo: TufRepository
    blobs: LocalBlobStore

    def publish(self, app_id: str, version: str, content: bytes) -> tuple[str, int]:
        """Store ``content`` and sign it as ``<app_id>/<version>.apppkg``: what the
        registry's publication listener call does, on the same data dir and database."""
        ref = self.blobs.put_bytes(content)
        with session_scope(self.sessions) as session:
            self.repo.published(
                session, app_id=app_id, version=version, sha256=ref.digest, length=ref.size
            )
        return ref.digest, ref.size


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"apprt serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"apprt serve not up after {STARTUP_TIMEOUT}s:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One ``apprt serve`` for the module (started once: a few seconds)."""
    root = tmp_path_factory.mktemp("tuf-serve")
    data_dir = root / "data"
    log = root / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPRT_")}
    env["APPRT_RUNTIME_DRIVER"] = "process"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "apprt", "serve", "--port", str(port), "--data-dir", data_dir],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    engine = None
    try:
        _wait_healthy(proc, base, log)
        settings = Settings(data_dir=data_dir)
        engine = make_engine(settings)
        sessions = session_factory(engine)
        repo = TufRepository(sessions, settings, TufConfig())
        yield Registry(
            base=base,
            data_dir=data_dir,
            engine=engine,
            sessions=sessions,
            repo=repo,
            blobs=LocalBlobStore(settings.resolved_blob_dir()),
        )
    finally:
        if engine is not None:
            engine.dispose()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


MakeUpdater = Callable[..., Updater]


@pytest.fixture
def make_updater(registry: Registry, tmp_path: Path) -> MakeUpdater:
    """A stock ``tuf.ngclient.Updater`` trusting ``/tuf/1.root.json``; ``base`` picks
    the server (or a mirror), ``name`` a separate client state directory."""

    def make(base: str | None = None, name: str = "client") -> Updater:
        base = base or registry.base
        metadata_dir = tmp_path / name / "metadata"
        trusted_root = tmp_path / name / "1.root.json"
        if not trusted_root.exists():
            # An installer ships this file; fetching it once stands in for that.
            metadata_dir.mkdir(parents=True)
            root = httpx.get(f"{registry.base}/tuf/1.root.json", timeout=5.0)
            assert root.status_code == 200, root.text
            trusted_root.write_bytes(root.content)
        return Updater(
            metadata_dir=str(metadata_dir),
            metadata_base_url=f"{base}/tuf/",
            target_dir=str(tmp_path / name / "targets"),
            target_base_url=f"{base}/tuf/targets/",
            bootstrap=trusted_root.read_bytes(),
        )

    return make


@dataclass
class Mirror:
    """A loopback HTTP server in front of ``upstream`` serving ``overrides`` instead."""

    upstream: str
    overrides: dict[str, bytes] = field(default_factory=dict)
    base: str = ""


@pytest.fixture
def mirror(registry: Registry) -> Iterator[Mirror]:
    state = Mirror(upstream=registry.base)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.overrides.get(self.path)
            status = 200
            if body is None:
                upstream = httpx.get(f"{state.upstream}{self.path}", timeout=10.0)
                status, body = upstream.status_code, upstream.content
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
