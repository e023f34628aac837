"""The gateway as a platform component: ``/apps`` in front of the router.

The hot path skips the platform's router: matching a request against every API route
(FastAPI's router, with the registry's and everyone's routes) measured ~0.2 ms per
request, more than everything else the gateway does. So ``lifespan`` puts a thin
:class:`Front` before the app's middleware stack that hands ``/apps/...`` straight to
the :class:`~apprt.gateway.proxy.Gateway` (which makes its own problem+json answers,
500s included) and everything else to the stack as before; it is taken away again
when the lifespan ends. The ``/apps`` mount below remains for when the front is not
installed (the runtime is off: it answers 503 with the reason).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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


class Front:
    """``/apps/...`` to the gateway, anything else to the platform's middleware stack."""

    def __init__(self, inner: Any, gateway: Gateway) -> None:
        self.inner = inner
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith("/apps/"):
            await self.gateway(scope, receive, send)
        else:
            await self.inner(scope, receive, send)


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
    stack = app.middleware_stack  # built before the lifespan ran (it runs through it)
    if stack is not None:
        app.middleware_stack = Front(stack, gateway)
    try:
        yield
    finally:
        if isinstance(app.middleware_stack, Front):
            app.middleware_stack = stack
        app.state.gateway = None
        gateway.close()
