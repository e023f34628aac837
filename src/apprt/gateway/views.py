"""The gateway as a platform component: ``/apps`` mounted, the proxy on ``app.state``.

The mount is a raw ASGI callable, not a FastAPI route: no dependency injection or body
parsing on the hot path. It finds the :class:`~apprt.gateway.proxy.Gateway` on
``app.state.gateway`` (built in ``lifespan`` once the supervisor runs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.requests import Request

from apprt.errors import Problem
from apprt.gateway.proxy import Gateway, Receive, Scope, Send
from apprt.runtime.views import RuntimeUnavailableError
from apprt.server import problem_response, problem_type


async def _entry(scope: Scope, receive: Receive, send: Send) -> None:
    gateway: Gateway | None = getattr(scope["app"].state, "gateway", None)
    if gateway is not None:
        await gateway(scope, receive, send)
        return
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": "runtime unavailable"})
        return
    error: RuntimeUnavailableError
    cause = getattr(scope["app"].state, "runtime_error", None)
    error = RuntimeUnavailableError(
        list(cause.problems) if cause else [Problem("the runtime is not running")],
        title="runtime unavailable",
    )
    response = problem_response(
        Request(scope),
        503,
        title=error.title,
        detail=str(error),
        type_=problem_type(error),
        problems=error.problems,
    )
    await response(scope, receive, send)


router = APIRouter()
router.mount("/apps", _entry, name="apps")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    supervisor = getattr(app.state, "supervisor", None)
    if supervisor is None:
        app.state.gateway = None
        yield
        return
    gateway = Gateway(
        app.state.settings,
        supervisor,
        app.state.session_factory,
        getattr(app.state, "metrics", None),
    )
    app.state.gateway = gateway
    try:
        yield
    finally:
        app.state.gateway = None
        gateway.close()
