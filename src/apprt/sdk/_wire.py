"""How the SDK talks to the platform API: HTTP/1.1 + JSON over ``$APPRT_PLATFORM_SOCKET``.

Every call is ``POST /v1/<operation>`` with a JSON object, answered with a JSON object
(2xx) or ``application/problem+json`` (turned into :mod:`apprt.sdk.errors`). One
connection per call: a local Unix socket connects in microseconds, and nothing is
shared between threads or event loops. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
from typing import Any

from apprt.sdk.errors import PlatformError, PlatformUnavailable, RateLimited, error_for

SOCKET_ENV = "APPRT_PLATFORM_SOCKET"
DEFAULT_TIMEOUT_S = 30.0
MAX_RESPONSE = 64 * 1024 * 1024


def socket_path_from_env() -> str:
    path = os.environ.get(SOCKET_ENV)
    if not path:
        raise PlatformUnavailable(
            f"${SOCKET_ENV} is not set: this code is not running under the apprt platform",
            problems=[
                {
                    "reason": f"${SOCKET_ENV} is not set",
                    "location": SOCKET_ENV,
                    "hint": "run the app on the platform (the runtime sets it), or in tests "
                    "give the client a local stand-in: state.StateClient(state.LocalTransport())",
                }
            ],
        )
    return path


def _unavailable(path: str, exc: BaseException) -> PlatformUnavailable:
    reason = f"cannot reach the platform API at {path}: {exc or type(exc).__name__}"
    return PlatformUnavailable(
        reason,
        problems=[
            {
                "reason": reason,
                "location": SOCKET_ENV,
                "hint": "the platform may be restarting; retry shortly",
            }
        ],
    )


def request_bytes(op: str, payload: dict[str, Any], headers: dict[str, str]) -> bytes:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    lines = [
        f"POST /v1/{op} HTTP/1.1",
        "host: platform",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def decode(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The JSON object of a 2xx answer, else the matching :class:`PlatformError`."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if 200 <= status < 300:
            raise PlatformError(f"the platform answered {status} with a body that is not JSON")
        data = {}
    if 200 <= status < 300:
        return data
    if status == 429 and "retry_after" not in data:
        with contextlib.suppress(ValueError):
            data["retry_after"] = float(headers.get("retry-after", "1"))
    error = error_for(status, data)
    if isinstance(error, RateLimited) and error.retry_after <= 0:
        error.retry_after = 1.0
    raise error


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("platform", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def call(
    path: str, op: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
) -> dict[str, Any]:
    """One blocking call."""
    conn = _UnixHTTPConnection(path, timeout)
    try:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            conn.request(
                "POST",
                f"/v1/{op}",
                body=body,
                headers={"content-type": "application/json", "connection": "close", **headers},
            )
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise _unavailable(path, exc) from None
        answer = {k.lower(): v for k, v in response.getheaders()}
        return decode(response.status, answer, data)
    finally:
        conn.close()


async def acall(
    path: str, op: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
) -> dict[str, Any]:
    """One call from async code (never blocks the event loop)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(path, limit=MAX_RESPONSE)
            try:
                writer.write(request_bytes(op, payload, headers))
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status, answer = _parse_head(head)
                length = int(answer.get("content-length", "0") or 0)
                if length > MAX_RESPONSE:
                    raise PlatformError(f"the platform's answer is larger than {MAX_RESPONSE}")
                body = await reader.readexactly(length)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
        raise _unavailable(path, exc) from None
    except ValueError as exc:
        raise _unavailable(path, exc) from None
    return decode(status, answer, body)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"malformed status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers
