"""Fixtures of the TUF tests: a real ``apprt serve`` on a loopback port, an in-process
handle on the same repository (to publish targets without the registry's upload
pipeline), a stock ngclient ``Updater`` factory, and a loopback "mirror" that serves
the server's files except those it is told to substitute (rollback, freeze attacks)."""

from __future__ import annotations

import threading
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
from tests._serve import environment, serving


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


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One ``apprt serve`` for the module (started once: a few seconds)."""
    root = tmp_path_factory.mktemp("tuf-serve")
    data_dir = root / "data"
    env = environment({"APPRT_RUNTIME_DRIVER": "process"}, inherit_apprt=False)
    with serving(data_dir, env=env, log=root / "serve.log") as server:
        settings = Settings(data_dir=data_dir)
        engine = make_engine(settings)
        try:
            sessions = session_factory(engine)
            repo = TufRepository(sessions, settings, TufConfig())
            yield Registry(
                base=server.url,
                data_dir=data_dir,
                engine=engine,
                sessions=sessions,
                repo=repo,
                blobs=LocalBlobStore(settings.resolved_blob_dir()),
            )
        finally:
            engine.dispose()


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
            root = httpx.get(f"{registry.base}/tuf/1.root.json", timeout=30.0)
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
                upstream = httpx.get(f"{state.upstream}{self.path}", timeout=30.0)
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
        thread.join(timeout=30)
