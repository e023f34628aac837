"""Tiny ASGI apps and task configs for driver and containment tests.

Apps are written as source files into a code directory (``backend/<module>.py``) so
that the sandboxed runner imports them the way it imports real apps.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from apprt.manifest import Resources
from apprt.runtime.drivers.base import TaskConfig

#: A minimal ASGI app: lifespan, and GET answers "hello <pid>". ``ACTIONS`` maps a path
#: to a function run on request, so attack apps only add actions.
BASE_APP = """
import os, json

ACTIONS = {}

def action(path):
    def register(fn):
        ACTIONS[path] = fn
        return fn
    return register

async def _body(receive):
    chunks = []
    while True:
        m = await receive()
        chunks.append(m.get("body", b""))
        if not m.get("more_body"):
            return b"".join(chunks)

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _body(receive)
    fn = ACTIONS.get(scope["path"])
    status = 200
    if fn is None:
        body = f"hello {os.getpid()}".encode()
    else:
        try:
            result = fn()
            body = json.dumps({"ok": True, "result": result}).encode()
        except BaseException as exc:  # report, the test decides
            body = json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""


def write_app(code_dir: Path, extra: str = "", module: str = "app_main") -> Path:
    backend = code_dir / "backend"
    backend.mkdir(parents=True, exist_ok=True)
    (backend / f"{module}.py").write_text(BASE_APP + "\n" + textwrap.dedent(extra))
    for d in (code_dir, backend):
        d.chmod(0o755)
    (backend / f"{module}.py").chmod(0o644)
    return code_dir


@dataclass
class Workspace:
    """Short paths (Unix sockets are limited to 108 bytes) under one temp directory."""

    root: Path
    made: list[str] = field(default_factory=list)

    def config(
        self,
        name: str,
        *,
        extra: str = "",
        resources: Resources | None = None,
        trusted: bool = True,
        app_id: str = "com.example.test",
        env: dict[str, str] | None = None,
    ) -> TaskConfig:
        code = write_app(self.root / "code" / name, extra)
        return TaskConfig(
            instance_id=name,
            app_id=app_id,
            version="1.0.0",
            org="org-" + name,
            code_dir=code,
            entry="app_main:app",
            env_dir=None,
            data_dir=self.root / "data" / name,
            run_dir=self.root / "run" / name,
            resources=resources or Resources(),
            env=env or {},
            trusted=trusted,
            log_path=self.root / "logs" / name / "output.log",
        )


@contextmanager
def workspace() -> Iterator[Workspace]:
    root = Path(tempfile.mkdtemp(prefix="apprt-t-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield Workspace(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("app", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def get(sock_path: Path, path: str = "/", timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET over the ingress socket (a fresh connection, like a gateway's first request)."""
    conn = _UnixHTTPConnection(str(sock_path), timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def timed_get(sock_path: Path, path: str = "/") -> float:
    start = time.perf_counter()
    status, _ = get(sock_path, path)
    assert status == 200
    return time.perf_counter() - start


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
