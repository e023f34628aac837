"""A raw ASGI app driving ``apprt.sdk`` the way app code does (standard library only).

``POST /call`` with ``{"op": name, "args": [...], "kwargs": {...}, "sync": bool,
"identity": bool}`` runs ``state.<op>`` (the async client, or the module-level blocking
functions with ``sync``) after ``identity.current(scope)`` when ``identity`` is true,
and answers ``{"result": ...}`` or ``{"error": class name, "status", "message",
"retry_after", "current_version"}``. ``GET /startup`` tells what ``whoami`` answered
during the app's lifespan startup (the platform socket exists before the app starts);
``GET /proof`` the encoded signed identity of that request.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from apprt.sdk import identity, state
from apprt.sdk.errors import PlatformError

client = state.AsyncStateClient()
STARTUP: dict[str, Any] = {}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


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


async def _call(request: dict[str, Any], scope: dict[str, Any]) -> Any:
    if request.get("identity"):
        identity.current(scope)
    op, args, kwargs = request["op"], request.get("args", []), request.get("kwargs", {})
    if request.get("sync"):
        return getattr(state, op)(*args, **kwargs)
    if op == "items":
        return [entry async for entry in client.items(*args, **kwargs)]
    return await getattr(client, op)(*args, **kwargs)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    STARTUP.update(await client.whoami())
                except PlatformError as exc:
                    STARTUP["error"] = str(exc)
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/healthz":
        await _reply(send, 200, {"status": "ok"})
    elif path == "/startup":
        await _reply(send, 200, STARTUP)
    elif path == "/proof":  # what the SDK forwards for this request (tests forge from it)
        who = identity.current(scope)
        await _reply(send, 200, {"org": who.org, "proof": who.proof.encode() if who.proof else ""})
    elif path == "/call" and scope["method"] == "POST":
        request = json.loads(await _body(receive))
        try:
            result = await _call(request, scope)
        except PlatformError as exc:
            await _reply(
                send,
                200,
                {
                    "error": type(exc).__name__,
                    "status": exc.status,
                    "message": str(exc),
                    "hint": exc.hint,
                    "retry_after": getattr(exc, "retry_after", None),
                    "current_version": getattr(exc, "current_version", None),
                },
            )
        except identity.IdentityError as exc:
            await _reply(send, 200, {"error": "IdentityError", "message": str(exc)})
        else:
            await _reply(send, 200, {"result": _plain(result)})
    else:
        await _reply(send, 404, {"error": "not found"})
