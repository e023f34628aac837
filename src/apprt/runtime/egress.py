"""The egress proxy: the only way out of a sandbox, for apps granted ``network:<host>:<port>``.

Sandboxes have no network interface but loopback. An app granted
``network:api.example.com:443`` reaches that host through an HTTP ``CONNECT`` proxy
listening on a Unix socket in its run directory (``<run_dir>/egress.sock``, seen in
the sandbox as ``$APPRT_EGRESS_SOCKET``). The proxy, on the platform side:

* allows a tunnel only to a ``host:port`` covered by one of the grants
  (:meth:`apprt.manifest.Permission.covers`, so ``*.example.com:443`` works), and
  answers ``403`` otherwise;
* when the grant names a host (not an IP), refuses addresses it resolves to on
  loopback, private, link-local or otherwise non-global networks (DNS rebinding
  into the platform's own network); grant the IP itself to reach such an address;
* limits throughput to the manifest's ``bandwidth_kbps`` with a token bucket per
  direction (upload and download each get the full rate; ``0`` means no egress);
* logs every connection (structlog ``egress.connection``: app, org, instance, target,
  decision, bytes each way, duration), and reports each refusal to ``on_refused``
  (the platform records it as an ``egress`` limit event of the instance).

Usage (in the platform's event loop)::

    proxy = EgressProxy(run_dir / "egress.sock", grants, bandwidth_kbps=1024,
                        labels={"app": app_id, "org": org, "instance": instance_id})
    await proxy.start()
    ...
    await proxy.aclose()

From the app (or its SDK): connect to the socket, send
``CONNECT api.example.com:443 HTTP/1.1\\r\\nHost: api.example.com:443\\r\\n\\r\\n``, read
``HTTP/1.1 200``, then speak TLS through the tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from apprt.manifest import Permission, parse_permission

log = structlog.get_logger("apprt.egress")

MAX_HEADER = 8192
CHUNK = 16384
CONNECT_TIMEOUT = 10.0


class TokenBucket:
    """``rate`` bytes per second, bursts up to ``capacity`` bytes (monotonic clock)."""

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(rate / 4, CHUNK)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def take(self, amount: int) -> None:
        """Wait until ``amount`` bytes may pass (in pieces no larger than the burst)."""
        async with self._lock:  # FIFO between the connections sharing this bucket
            remaining = float(amount)
            while remaining > 0:
                self._refill()
                piece = min(remaining, self.capacity)
                if self.tokens >= piece:
                    self.tokens -= piece
                    remaining -= piece
                    continue
                await asyncio.sleep((piece - self.tokens) / self.rate)


def _grant_list(grants: Iterable[Permission | str]) -> list[Permission]:
    out = []
    for grant in grants:
        perm = parse_permission(grant) if isinstance(grant, str) else grant
        if perm.kind == "network":
            out.append(perm)
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _format_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EgressProxy:
    """An HTTP CONNECT proxy on a Unix socket, enforcing grants and a bandwidth limit."""

    def __init__(
        self,
        socket_path: Path,
        grants: Iterable[Permission | str],
        *,
        bandwidth_kbps: int,
        labels: dict[str, str] | None = None,
        socket_mode: int = 0o666,
        socket_uid: int | None = None,
        allow_private_for_hostnames: bool = False,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.grants = _grant_list(grants)
        self.bandwidth_kbps = bandwidth_kbps
        self.labels = labels or {}
        self.socket_mode = socket_mode
        self.socket_uid = socket_uid
        self.allow_private_for_hostnames = allow_private_for_hostnames
        self.on_refused = on_refused  # (target, why): a limit event for the supervisor
        rate = bandwidth_kbps * 1000 / 8
        self.upload = TokenBucket(rate) if rate > 0 else None
        self.download = TokenBucket(rate) if rate > 0 else None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.refused = 0

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        self.socket_path.chmod(self.socket_mode)
        if self.socket_uid is not None:
            os.chown(self.socket_path, self.socket_uid, -1)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    # -- policy ---------------------------------------------------------------------
    def allowed(self, host: str, port: int) -> Permission | None:
        """The grant covering ``host:port``, or None."""
        wanted = Permission("network", _format_target(host.lower(), port))
        for grant in self.grants:
            if grant.covers(wanted):
                return grant
        return None

    async def _resolve(self, host: str, port: int) -> list[str]:
        if _is_ip(host):
            return [host.strip("[]")]
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        if not self.allow_private_for_hostnames:
            addresses = [a for a in addresses if ipaddress.ip_address(a).is_global]
        return addresses

    def _refused(self, target: str, why: str) -> None:
        if self.on_refused is not None:
            try:
                self.on_refused(target, why)
            except Exception:
                log.exception("egress.on_refused_failed", target=target)

    # -- connection -----------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        started = time.monotonic()
        target = ""
        decision = "error"
        up = down = 0
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                decision = "bad-request"
                await self._reply(writer, 400, "the request must be CONNECT host:port")
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) != 3 or parts[0].upper() != "CONNECT":
                decision = "bad-request"
                await self._reply(
                    writer, 405, "only CONNECT host:port is supported; tunnel HTTP through it"
                )
                return
            host, _, port_text = parts[1].rpartition(":")
            host = host.strip("[]")
            target = _format_target(host, int(port_text) if port_text.isdigit() else 0)
            if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
                decision = "bad-request"
                await self._reply(writer, 400, f"{parts[1]!r} is not host:port")
                return
            port = int(port_text)
            grant = self.allowed(host, port)
            if grant is None or self.bandwidth_kbps <= 0:
                decision = "refused"
                self.refused += 1
                why = (
                    f"network:{target} is not granted to this app"
                    if grant is None
                    else "the app's bandwidth_kbps is 0 (no egress)"
                )
                self._refused(target, why)
                await self._reply(writer, 403, why)
                return
            addresses = await self._resolve(host, port)
            if not addresses:
                decision = "refused"
                self.refused += 1
                why = (
                    f"{host} resolves to no public address (private and loopback addresses "
                    "are reachable only through a grant naming the IP)"
                )
                self._refused(target, why)
                await self._reply(writer, 403, why)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(addresses[0], port), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                decision = "unreachable"
                await self._reply(writer, 502, f"cannot connect to {target}: {exc}")
                return
            decision = "allowed"
            self.connections += 1
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            counts = [0, 0]
            await asyncio.gather(
                self._pipe(reader, up_writer, self.upload, counts, 0),
                self._pipe(up_reader, writer, self.download, counts, 1),
                return_exceptions=True,
            )
            up, down = counts
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            log.info(
                "egress.connection",
                **self.labels,
                target=target,
                decision=decision,
                bytes_up=up,
                bytes_down=down,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
            if task is not None:
                self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        bucket: TokenBucket | None,
        counts: list[int],
        index: int,
    ) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if bucket is not None:
                    await bucket.take(len(data))
                writer.write(data)
                await writer.drain()
                counts[index] += len(data)
        finally:
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, detail: str) -> None:
        reason = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed"}.get(
            status, "Bad Gateway"
        )
        body = detail.encode()
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
