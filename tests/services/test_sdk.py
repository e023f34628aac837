"""apprt.sdk on its own: identity.current, the forwarded proof, errors, transports."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apprt.gateway.identity import identity_headers
from apprt.sdk import identity, state
from apprt.sdk.errors import (
    Conflict,
    InvalidRequest,
    PermissionDenied,
    PlatformError,
    PlatformUnavailable,
    QuotaExceeded,
    RateLimited,
    error_for,
)

KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def _no_remembered_caller() -> Iterator[None]:
    token = identity._current.set(None)
    yield
    identity._current.reset(token)


def _scope(org: str = "acme", *, method: str = "POST", path: str = "/api/notes") -> dict[str, Any]:
    headers = identity_headers(
        KEY,
        org=org,
        user="ada",
        roles=["member"],
        grants=["state"],
        config='{"max_note_length": 20}',
        method=method,
        target=path,
    )
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"app"), *headers],
    }


class _Request:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope


def test_current_accepts_a_scope_a_request_or_headers() -> None:
    scope = _scope()
    who = identity.current(scope, KEY)
    assert (who.org, who.user, who.roles, who.grants) == ("acme", "ada", ("member",), ("state",))
    assert who.config == {"max_note_length": 20}
    assert identity.current(_Request(scope), KEY) == who
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    assert identity.current(headers, KEY, method="POST", target="/api/notes") == who
    with pytest.raises(identity.IdentityError, match="method= and target="):
        identity.current(headers, KEY)
    with pytest.raises(identity.IdentityError, match="does not match"):
        identity.current(_scope(), b"x" * 32)
    forged = dict(headers, **{identity.ORG: "other"})
    with pytest.raises(identity.IdentityError, match="does not match"):
        identity.current(forged, KEY, method="POST", target="/api/notes")
    with pytest.raises(identity.IdentityError, match="not come through the gateway"):
        identity.current({"type": "http", "method": "GET", "path": "/", "headers": []}, KEY)


def test_current_uses_the_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(identity.KEY_ENV, KEY.hex())
    assert identity.current(_scope()).org == "acme"
    monkeypatch.delenv(identity.KEY_ENV)
    with pytest.raises(identity.IdentityError, match="APPRT_IDENTITY_KEY is not set"):
        identity.current(_scope())


def test_the_proof_round_trips_and_still_verifies() -> None:
    who = identity.current(_scope(), KEY)
    assert who.proof is not None
    encoded = who.proof.encode()
    assert encoded.isascii()
    proof = identity.Proof.decode(encoded)
    again = identity.verify_identity(
        dict(proof.headers), KEY, method=proof.method, target=proof.target
    )
    assert again == who
    for bad in ["!!!", "e30", "W10="]:  # not base64, {}, []
        with pytest.raises(identity.IdentityError):
            identity.Proof.decode(bad)
    with pytest.raises(identity.IdentityError, match="longer than"):
        identity.Proof.decode("A" * (identity.MAX_CALLER_HEADER + 1))


def test_the_verified_caller_is_remembered_per_task() -> None:
    async def handle(org: str) -> str | None:
        assert identity.active() is None  # nothing leaks in from another request
        identity.current(_scope(org), KEY)
        await asyncio.sleep(0.01)
        who = identity.active()
        return who.org if who else None

    async def main() -> list[str | None]:
        return list(await asyncio.gather(handle("acme"), handle("globex")))

    assert asyncio.run(main()) == ["acme", "globex"]


def test_errors_say_what_and_how_to_fix() -> None:
    body = {
        "title": "permission denied",
        "problems": [{"reason": "no state permission", "hint": "add it to app.toml"}],
    }
    error = error_for(403, body)
    assert isinstance(error, PermissionDenied) and error.status == 403
    assert str(error) == "no state permission (add it to app.toml)"
    assert error.hint == "add it to app.toml"
    assert isinstance(error_for(507, {}), QuotaExceeded)
    limited = error_for(429, {"retry_after": 3})
    assert isinstance(limited, RateLimited) and limited.retry_after == 3
    conflict = error_for(409, {"current_version": 7})
    assert isinstance(conflict, Conflict) and conflict.current_version == 7
    assert isinstance(error_for(400, {}), InvalidRequest)
    assert isinstance(error_for(503, {}), PlatformUnavailable)
    assert type(error_for(500, {"detail": "boom"})) is PlatformError


def test_no_platform_socket_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("APPRT_PLATFORM_SOCKET", raising=False)
    with pytest.raises(PlatformUnavailable, match="not running under the apprt platform") as info:
        state.StateClient()
    assert "LocalTransport" in info.value.hint
    client = state.StateClient(state.SocketTransport(str(tmp_path / "missing.sock")))
    with pytest.raises(PlatformUnavailable, match="cannot reach the platform API"):
        client.get("k")
    aclient = state.AsyncStateClient(state.SocketTransport(str(tmp_path / "missing.sock")))
    with pytest.raises(PlatformUnavailable, match="cannot reach the platform API"):
        asyncio.run(aclient.get("k"))


def test_a_caller_built_by_hand_cannot_be_forwarded(tmp_path: Path) -> None:
    client = state.StateClient(state.SocketTransport(str(tmp_path / "x.sock")))
    who = identity.Identity(org="acme", user="ada", roles=(), grants=())
    with pytest.raises(InvalidRequest, match="no signature to forward"):
        client.get("k", caller=who)


def _fake_platform(
    path: Path, answers: list[tuple[int, dict[str, str], bytes]]
) -> threading.Thread:
    """A one-request-per-connection server answering ``answers`` in order."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    seen: list[bytes] = []

    def run() -> None:
        with server:
            for status, headers, body in answers:
                conn, _ = server.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = int(
                        next(
                            line.split(b":")[1]
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        )
                    )
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    seen.append(head + b"\r\n\r\n" + rest)
                    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
                    conn.sendall(head.encode() + body)

    thread = threading.Thread(target=run, daemon=True)
    thread.seen = seen  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_socket_transport_speaks_json_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    problem = json.dumps(
        {"title": "too many", "problems": [{"reason": "slow down", "hint": "retry later"}]}
    ).encode()
    thread = _fake_platform(
        path,
        [
            (200, {}, b'{"key": "k", "found": true, "value": {"a": 1}, "version": 4}'),
            (429, {"retry-after": "2"}, problem),
            (200, {}, b'{"key": "k", "version": 5}'),
        ],
    )
    client = state.StateClient(state.SocketTransport(str(path)))
    assert client.get("k") == {"a": 1}
    with pytest.raises(RateLimited, match="slow down") as info:
        client.put("k", 1)
    assert info.value.retry_after == 2.0
    who = identity.current(_scope(), KEY)
    aclient = state.AsyncStateClient(state.SocketTransport(str(path)))
    assert asyncio.run(aclient.put("k", "é", if_version=4, caller=who)) == 5
    thread.join(5)
    requests = thread.seen  # type: ignore[attr-defined]
    assert requests[0].startswith(b"POST /v1/state/get HTTP/1.1")
    last = requests[2]
    assert b"x-apprt-caller: " in last
    assert json.loads(last.partition(b"\r\n\r\n")[2]) == {"key": "k", "value": "é", "if_version": 4}


def test_local_transport_keeps_each_org_apart_and_persists(tmp_path: Path) -> None:
    transport = state.LocalTransport(tmp_path)
    client = state.StateClient(transport)
    acme, globex = identity.current(_scope("acme"), KEY), identity.current(_scope("globex"), KEY)
    client.put("n", 1, caller=acme)
    assert client.get("n", caller=globex) is None
    assert client.increment("n", caller=acme) == 2
    reopened = state.StateClient(state.LocalTransport(tmp_path))
    assert reopened.get("n", caller=acme) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-acme.json"]
    state.use(transport)
    try:
        assert state.get("n", caller=acme) == 2
        assert [e.key for e in state.items(caller=acme)] == ["n"]
        assert state.usage(caller=acme).keys == 1
    finally:
        state.use(None)


def test_module_functions_act_for_the_current_request(tmp_path: Path) -> None:
    state.use(state.LocalTransport())
    try:
        identity.current(_scope("acme"), KEY)
        state.put("k", "acme's")
        identity.current(_scope("globex"), KEY)
        assert state.get("k") is None
        assert state.whoami()["org"] == "globex"
    finally:
        state.use(None)
