"""A test app that tries to reach 127.0.0.1:<port> through its egress socket."""

import json
import os
import socket


def _fetch(port: int) -> dict:
    path = os.environ.get("APPRT_EGRESS_SOCKET", "")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            target = f"127.0.0.1:{port}"
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(1024)
                if not chunk:
                    break
                head += chunk
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
            if status != 200:
                return {"status": status}
            s.sendall(b"ping")
            return {"status": status, "reply": s.recv(16).decode()}
    except OSError as exc:
        return {"status": 0, "error": type(exc).__name__}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = dict(
        p.split("=", 1) for p in scope.get("query_string", b"").decode().split("&") if "=" in p
    )
    body = {"status": "ok"} if scope["path"] == "/healthz" else _fetch(int(query.get("port", "1")))
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})
