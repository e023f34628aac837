"""A raw ASGI app (standard library only) exercising what the runtime tests need."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

DATA = Path(os.environ.get("APPRT_APP_DATA", "."))
if (DATA / "crash-on-start").exists():
    print("echo: crash-on-start is set, exiting", flush=True)
    sys.exit(3)
#: Identifies this process (pids are per namespace, so a sandbox's own pid says little).
BOOT = os.urandom(8).hex()
print(f"echo: started pid {os.getpid()} boot {BOOT}", flush=True)


async def _reply(send: Any, status: int, payload: object, headers: list[Any] | None = None) -> None:
    data = json.dumps(payload).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])})
    await send({"type": "http.response.body", "body": data})


def _write(name: str, text: str) -> None:
    """Replace the data dir's ``name`` atomically (a reader never sees half of it)."""
    tmp = DATA / f".{name}.tmp"
    tmp.write_text(text)
    tmp.replace(DATA / name)


async def _websocket(scope: Any, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    protocols = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": protocols[0] if protocols else None})
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    await send({"type": "websocket.send", "text": json.dumps({"org": headers.get("x-apprt-org")})})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked"})
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/healthz":
        await _reply(send, 200, {"ok": True})
    elif path == "/pid":
        await _reply(send, 200, {"pid": os.getpid(), "boot": BOOT})
    elif path == "/echo":
        body = b""
        chunks = 0
        while True:
            message = await receive()
            body += message.get("body", b"")
            chunks += 1
            if not message.get("more_body"):
                break
        await _reply(
            send,
            200,
            {
                "method": scope["method"],
                "path": path,
                "raw_path": scope.get("raw_path", b"").decode("latin-1"),
                "query_string": scope["query_string"].decode("latin-1"),
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
                ],
                "body_length": len(body),
                "boot": BOOT,
            },
        )
    elif path == "/upload":
        # Count the body as it streams; report when each chunk arrived. With
        # ?progress=NAME, the count so far is also written to the data dir's NAME as
        # each chunk arrives (for a sender that waits on it before sending more).
        total, arrivals = 0, []
        start = time.monotonic()
        progress = query.get("progress")
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            arrivals.append(round(time.monotonic() - start, 4))
            if progress:
                _write(progress, str(total))
            if not message.get("more_body"):
                break
        await _reply(send, 200, {"bytes": total, "first": arrivals[0], "last": arrivals[-1]})
    elif path == "/stream-until":
        # A chunk every 50 ms until the data dir has NAME (then b"released"), or after
        # `max` chunks (then b"gave up"): a buffering proxy would deliver nothing
        # before the end, so a client could never release it.
        name, limit = query["name"], int(query.get("max", 600))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        end = b"gave up"
        for _ in range(limit):
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            await asyncio.sleep(0.05)
            if (DATA / name).exists():
                end = b"released"
                break
        await send({"type": "http.response.body", "body": end})
    elif path == "/hold":
        # Answer once the data dir has NAME (or after `max` seconds, with 503).
        name, limit = query["name"], float(query.get("max", 60))
        deadline = time.monotonic() + limit
        while not (DATA / name).exists():
            if time.monotonic() > deadline:
                await _reply(send, 503, {"held": False})
                return
            await asyncio.sleep(0.02)
        await _reply(send, 200, {"held": True})
    elif path == "/stream":
        n, size, delay = (
            int(query.get("n", 5)),
            int(query.get("size", 1024)),
            float(query.get("delay", 0.1)),
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        for _ in range(n):
            await send({"type": "http.response.body", "body": b"x" * size, "more_body": True})
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/sleep":
        await asyncio.sleep(float(query.get("s", 1)))
        await _reply(send, 200, {"slept": True})
    elif path == "/print":
        print(query.get("msg", "hello"), flush=True)
        await _reply(send, 200, {"printed": True})
    elif path == "/crash":
        print("echo: crashing on request", flush=True)
        os._exit(1)
    elif path == "/hop":
        await _reply(
            send,
            200,
            {"ok": True},
            [
                (b"connection", b"x-secret-hop"),
                (b"x-secret-hop", b"1"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-authenticate", b"Basic"),
                (b"x-kept", b"yes"),
            ],
        )
    elif path == "/status":
        await _reply(send, int(query.get("code", 200)), {"code": int(query.get("code", 200))})
    else:
        await _reply(send, 404, {"error": f"no route {path}"})
