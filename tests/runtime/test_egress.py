"""The egress proxy: grants enforced, bandwidth bounded, every connection logged."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from apprt.runtime.egress import EgressProxy, TokenBucket


async def _tcp_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _connect(
    sock: Path, target: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


def _sock_path() -> Path:
    return Path(tempfile.mkdtemp(prefix="apprt-eg-", dir="/tmp")) / "egress.sock"


def test_grants_allow_only_the_granted_host_and_port() -> None:
    async def main() -> None:
        allowed_srv, allowed = await _tcp_server(_echo)
        other_srv, other = await _tcp_server(_echo)
        sock = _sock_path()
        proxy = EgressProxy(
            sock,
            [f"network:127.0.0.1:{allowed}", "network:*.example.com:443"],
            bandwidth_kbps=100_000,
            labels={"app": "com.example.t", "org": "o1", "instance": "i1"},
        )
        await proxy.start()
        try:
            with capture_logs() as logs:
                reader, writer, head = await _connect(sock, f"127.0.0.1:{allowed}")
                assert head.startswith(b"HTTP/1.1 200"), head
                writer.write(b"ping")
                await writer.drain()
                assert await reader.readexactly(4) == b"ping"
                writer.close()

                reader, writer, head = await _connect(sock, f"127.0.0.1:{other}")
                assert head.startswith(b"HTTP/1.1 403"), head
                assert f"network:127.0.0.1:{other} is not granted" in (await reader.read()).decode()
                writer.close()

                # a host grant does not open private addresses (DNS rebinding)
                reader, writer, head = await _connect(sock, f"localhost:{allowed}")
                assert head.startswith(b"HTTP/1.1 403"), head
                writer.close()

                reader, writer = await asyncio.open_unix_connection(str(sock))
                writer.write(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 405")
                writer.close()
                await asyncio.sleep(0.05)
            decisions = [
                (e["target"], e["decision"]) for e in logs if e["event"] == "egress.connection"
            ]
            assert (f"127.0.0.1:{allowed}", "allowed") in decisions
            assert (f"127.0.0.1:{other}", "refused") in decisions
            assert (f"localhost:{allowed}", "refused") in decisions
            assert all(
                e["app"] == "com.example.t" for e in logs if e["event"] == "egress.connection"
            )
            assert proxy.connections == 1 and proxy.refused == 2
            (echo,) = [e for e in logs if e.get("decision") == "allowed"]
            assert echo["bytes_up"] == 4 and echo["bytes_down"] == 4
        finally:
            await proxy.aclose()
            allowed_srv.close()
            other_srv.close()

    asyncio.run(main())


def test_zero_bandwidth_means_no_egress() -> None:
    async def main() -> None:
        srv, port = await _tcp_server(_echo)
        sock = _sock_path()
        proxy = EgressProxy(sock, [f"network:127.0.0.1:{port}"], bandwidth_kbps=0)
        await proxy.start()
        try:
            _, writer, head = await _connect(sock, f"127.0.0.1:{port}")
            assert head.startswith(b"HTTP/1.1 403")
            writer.close()
        finally:
            await proxy.aclose()
            srv.close()

    asyncio.run(main())


@pytest.mark.parametrize("direction", ["download", "upload"])
def test_throughput_is_bounded_by_the_token_bucket(direction: str) -> None:
    size = 600_000
    kbps = 3200  # 400 kB/s: ~1.2 s for 600 kB after the initial burst
    rate = kbps * 1000 / 8
    burst = TokenBucket(rate).capacity

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if direction == "download":
            writer.write(b"x" * size)
            await writer.drain()
        else:
            got = 0
            while got < size and (data := await reader.read(65536)):
                got += len(data)
            writer.write(b"done")
            await writer.drain()
        writer.close()

    async def main() -> float:
        srv, port = await _tcp_server(source)
        sock = _sock_path()
        proxy = EgressProxy(sock, [f"network:127.0.0.1:{port}"], bandwidth_kbps=kbps)
        await proxy.start()
        try:
            reader, writer, head = await _connect(sock, f"127.0.0.1:{port}")
            assert head.startswith(b"HTTP/1.1 200")
            start = time.perf_counter()
            if direction == "download":
                got = 0
                while got < size:
                    data = await reader.read(65536)
                    assert data
                    got += len(data)
            else:
                writer.write(b"y" * size)
                await writer.drain()
                assert await reader.readexactly(4) == b"done"
            elapsed = time.perf_counter() - start
            writer.close()
            return elapsed
        finally:
            await proxy.aclose()
            srv.close()

    elapsed = asyncio.run(main())
    measured = (size - burst) / elapsed  # bytes beyond the burst, per second
    ratio = measured / rate
    print(
        f"egress {direction}: {size / elapsed / 1000:.0f} kB/s through a "
        f"{rate / 1000:.0f} kB/s bucket (ratio {ratio:.2f})"
    )
    assert ratio <= 1.1, ratio  # never faster than the bucket
    assert ratio >= 0.3, ratio  # and not absurdly slower (the proxy is not the bottleneck)
