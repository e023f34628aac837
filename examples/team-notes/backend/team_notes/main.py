"""Team Notes' ASGI app. The organization comes from the gateway's signed headers."""

from __future__ import annotations

import json
from typing import Any

from team_notes.store import NoteStore

store = NoteStore()


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Any, status: int, payload: object) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    headers = {k.decode(): v.decode() for k, v in scope.get("headers", [])}
    path, method = scope["path"], scope["method"]
    if path == "/healthz":
        await _reply(send, 200, {"status": "ok"})
        return
    org = headers.get("x-apprt-org")
    if not org:
        error = "no organization: requests must come through the gateway"
        await _reply(send, 401, {"error": error})
        return
    try:
        if path == "/api/notes" and method == "GET":
            await _reply(send, 200, {"notes": store.list(org)})
        elif path == "/api/notes" and method == "POST":
            text = json.loads(await _body(receive) or b"{}").get("text", "").strip()
            if not text:
                await _reply(send, 400, {"error": "text must be a non-empty string"})
                return
            note = store.add(org, headers.get("x-apprt-user", "anonymous"), text)
            await _reply(send, 201, note)
        else:
            await _reply(send, 404, {"error": f"no route for {method} {path}"})
    except ValueError as exc:
        await _reply(send, 400, {"error": str(exc)})
