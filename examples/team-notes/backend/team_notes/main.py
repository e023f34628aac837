"""Team Notes' ASGI app: one deployment serving every organization (shared tenancy).

Who is calling comes from the gateway's signed identity headers, checked with
``identity.current(scope)``; the notes live in the platform's state service, which
acts for that caller's organization, so each organization sees only its own notes.
"""

from __future__ import annotations

import json
from typing import Any

from apprt.sdk import identity
from apprt.sdk.errors import PlatformError, QuotaExceeded, RateLimited
from team_notes.store import NoteStore, on_platform

store = NoteStore()
DEFAULT_MAX_LENGTH = 2000


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(
    send: Any, status: int, payload: object, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(payload).encode()
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": data})


def _caller(scope: dict[str, Any]) -> identity.Identity:
    if on_platform():
        return identity.current(scope)  # raises IdentityError unless the gateway signed it
    # Outside the platform (the app's own tests) nothing signs the headers: take them as
    # given. Never do this under the platform.
    headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
    if not headers.get(identity.ORG):
        raise identity.IdentityError("no organization: requests must come through the gateway")
    return identity.Identity(
        org=headers[identity.ORG],
        user=headers.get(identity.USER, ""),
        roles=tuple(r for r in headers.get(identity.ROLES, "").split(",") if r),
        grants=(),
        config=json.loads(headers.get(identity.CONFIG) or "{}"),
    )


async def _notes(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path, method = scope["path"], scope["method"]
    try:
        caller = _caller(scope)
    except identity.IdentityError as exc:
        await _reply(send, 401, {"error": str(exc)})
        return
    if path == "/api/notes" and method == "GET":
        await _reply(send, 200, {"notes": await store.list(caller)})
    elif path == "/api/notes" and method == "POST":
        try:
            text = json.loads(await _body(receive) or b"{}").get("text", "")
        except (ValueError, AttributeError):
            await _reply(send, 400, {"error": "the body must be a JSON object"})
            return
        text = text.strip() if isinstance(text, str) else ""
        limit = caller.config.get("max_note_length", DEFAULT_MAX_LENGTH)
        if not text:
            await _reply(send, 400, {"error": "text must be a non-empty string"})
        elif len(text) > limit:
            await _reply(send, 400, {"error": f"a note has at most {limit} characters"})
        else:
            await _reply(send, 201, await store.add(caller, text))
    else:
        await _reply(send, 404, {"error": f"no route for {method} {path}"})


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
    if scope["path"] == "/healthz":
        await _reply(send, 200, {"status": "ok"})
        return
    try:
        await _notes(scope, receive, send)
    except RateLimited as exc:
        retry = str(max(1, round(exc.retry_after))).encode()
        await _reply(send, 429, {"error": str(exc)}, [(b"retry-after", retry)])
    except QuotaExceeded as exc:
        await _reply(send, 507, {"error": str(exc)})
    except PlatformError as exc:
        await _reply(send, 503, {"error": str(exc)})
