"""The CRM Connector's ASGI app: a health check and one route per MCP tool."""

from __future__ import annotations

import json
from typing import Any

from crm_connector.data import CONTACTS, DEALS


async def _read_json(receive: Any) -> Any:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return json.loads(body or b"{}")


async def _reply(send: Any, status: int, payload: object) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def lookup_contact(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    query = str(arguments.get("query", "")).lower()
    if not query:
        raise ValueError("query must be a non-empty string")
    return [c for c in CONTACTS if query in c["name"].lower() or query in c["email"]]


def list_deals(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    limit = int(arguments.get("limit", 10))
    return sorted(DEALS, key=lambda d: d["amount"], reverse=True)[:limit]


TOOLS = {"/tools/lookup-contact": lookup_contact, "/tools/list-deals": list_deals}


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
    path, method = scope["path"], scope["method"]
    if path == "/healthz":
        await _reply(send, 200, {"status": "ok"})
    elif path in TOOLS and method == "POST":
        try:
            result = TOOLS[path](await _read_json(receive))
        except (ValueError, TypeError) as exc:
            await _reply(send, 400, {"error": str(exc)})
            return
        await _reply(send, 200, {"result": result})
    else:
        await _reply(send, 404, {"error": f"no route for {method} {path}"})
