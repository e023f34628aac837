"""One egress proxy per running instance that was granted ``network:<host>:<port>``.

The sandbox has no network interface but loopback; its only way out is the
:class:`~apprt.runtime.egress.EgressProxy` on ``<run_dir>/egress.sock`` (seen inside
as ``$APPRT_EGRESS_SOCKET``). This component opens that socket just before a sandbox
starts (the supervisor's start listener), closes it when the sandbox stops, and
re-opens it for sandboxes re-adopted after a platform restart. An instance without a
network grant gets no socket at all, so connecting fails: no egress by default.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI

from apprt.manifest import parse_permission
from apprt.runtime.egress import EgressProxy
from apprt.runtime.supervisor import Slot, Supervisor

log = structlog.get_logger(__name__)

EGRESS_SOCKET = "egress.sock"


class EgressProxies:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._proxies: dict[Path, EgressProxy] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.supervisor.add_start_listener(self.attach)
        self.supervisor.add_stop_listener(self.detach_ingress)
        for slot in list(self.supervisor.slots.values()):  # re-adopted sandboxes
            if slot.handle is not None:
                self.attach(slot, Path(slot.handle.state["run_dir"]))

    async def aclose(self) -> None:
        with self._lock:
            proxies = list(self._proxies.values())
            self._proxies.clear()
        for proxy in proxies:
            await proxy.aclose()

    def attach(self, slot: Slot, run_dir: Path) -> None:
        """Open ``<run_dir>/egress.sock`` for ``slot`` if it holds a network grant."""
        grants = [p for p in (parse_permission(g) for g in slot.grants) if p.kind == "network"]
        run_dir = Path(run_dir)
        if not grants or self._loop is None:
            return
        with self._lock:
            if run_dir in self._proxies:
                return
            run_dir.mkdir(parents=True, exist_ok=True)  # before the sandbox makes it
            proxy = EgressProxy(
                run_dir / EGRESS_SOCKET,
                grants,
                bandwidth_kbps=slot.resources.bandwidth_kbps,
                labels={"app": slot.app_id, "org": slot.org or "", "instance": slot.id},
                on_refused=lambda target, why: self.supervisor.note_limit(
                    slot, "egress", f"connection to {target} refused: {why}"
                ),
            )
            self._proxies[run_dir] = proxy
        future = asyncio.run_coroutine_threadsafe(proxy.start(), self._loop)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread: the socket exists before the sandbox starts
            future.result(timeout=10)
        log.info("egress.attached", instance=slot.id, grants=[str(g) for g in grants])

    def detach_ingress(self, ingress_socket: Path) -> None:
        with self._lock:
            proxy = self._proxies.pop(Path(ingress_socket).parent, None)
        if proxy is not None and self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(proxy.aclose(), self._loop)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    proxies = EgressProxies(app.state.supervisor)
    await proxies.start()
    app.state.egress_proxies = proxies
    try:
        yield
    finally:
        await proxies.aclose()
