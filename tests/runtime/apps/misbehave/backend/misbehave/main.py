"""An app that hits its limits on request (standard library only, raw ASGI).

``/forkbomb`` forks until refused (and reaps its children), ``/spin?s=`` burns CPU,
``/fill`` writes into its data directory until it is full, ``/eat`` allocates until
the OOM killer ends it, ``/sleep?s=`` answers late, ``/egress?port=`` asks the egress
proxy for a host it was not granted. Anything else: ``{"ok": true}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

DATA = Path(os.environ.get("APPRT_APP_DATA", "."))


def forkbomb() -> dict[str, Any]:
    children, error = [], None
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError as exc:
            error = exc.errno
            break
        if pid == 0:
            time.sleep(0.5)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return {"forked": len(children), "errno": error}


def spin(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def fill() -> dict[str, Any]:
    written, error = 0, None
    try:
        for i in range(1000):
            with (DATA / f"fill-{i}").open("wb") as f:
                for _ in range(4):
                    f.write(b"z" * (256 << 10))
                    written += 256 << 10
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        error = exc.errno
    return {"written": written, "errno": error}


def eat() -> int:
    hoard = []
    for _ in range(128):  # up to 1 GiB, each page written
        hoard.append(bytearray(b"x") * (8 << 20))
    return len(hoard)


def egress(port: int) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(os.environ["APPRT_EGRESS_SOCKET"])
        s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return s.recv(200).decode().split("\r\n")[0]


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    result: Any = True
    if path == "/forkbomb":
        result = forkbomb()
    elif path == "/spin":
        result = spin(float(query.get("s", "1")))
    elif path == "/fill":
        result = fill()
    elif path == "/eat":
        result = eat()
    elif path == "/sleep":
        await asyncio.sleep(float(query.get("s", "1")))
    elif path == "/egress":
        result = egress(int(query["port"]))
    body = json.dumps({"ok": True, "result": result}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
