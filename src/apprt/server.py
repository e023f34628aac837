"""The ASGI application: composes every domain's routes around shared state.

:func:`create_app` builds a FastAPI app whose lifespan prepares what the routes
need and stashes it on ``app.state``:

=====================  ==============================================================
``settings``           the :class:`~apprt.settings.Settings` the app was built with
``engine``             SQLAlchemy engine, schema migrated to head at start
``session_factory``    sessions for :mod:`apprt.db.dependencies`
``blob_store``         the :class:`~apprt.blobs.store.BlobStore`
=====================  ==============================================================

Start-up work is blocking (file system, migrations), so it runs in a worker thread
and the event loop stays responsive.

Every error leaves as ``application/problem+json`` (RFC 9457): ``type``, ``title``,
``status``, ``detail``, ``instance`` and, for apprt's own errors, ``problems`` (what,
where, how to fix). An :class:`~apprt.errors.ApprtError` is a 400 unless its class
sets ``status_code`` (and optionally ``problem_type``, ``headers``); its ``type`` is
``urn:apprt:problem:<kebab-case class name>`` so clients can branch on it. Unexpected
exceptions become a bare 500 with an error id that is also logged with the traceback;
nothing of the exception reaches the client.
"""

from __future__ import annotations

import importlib
import re
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from http import HTTPStatus
from types import ModuleType
from typing import Annotated, Any, ClassVar, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from apprt import __version__
from apprt.accounts.services import bootstrap_platform_admin
from apprt.blobs.local import LocalBlobStore
from apprt.db.dependencies import get_engine
from apprt.db.engine import make_engine, session_factory, session_scope
from apprt.db.migrate import upgrade_to_head
from apprt.errors import ApprtError, Problem
from apprt.settings import Settings

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


# -- problem+json -------------------------------------------------------------------


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every error response of the API carries them."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    problems: list[dict[str, str]] = []


_PROBLEM_RESPONSE_DOC: dict[str, Any] = {
    "model": ProblemDetails,
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
}


def problem_response(
    request: Request,
    status: int,
    *,
    title: str | None = None,
    detail: str = "",
    type_: str = "about:blank",
    problems: Sequence[Problem] = (),
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description or HTTPStatus(status).phrase,
        "instance": request.url.path,
        "problems": [p.as_dict() for p in problems],
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def _kebab(name: str) -> str:
    name = name.removesuffix("Error") or name
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem_type(error: ApprtError) -> str:
    explicit: str | None = getattr(error, "problem_type", None)
    if explicit:
        return explicit
    if type(error) is ApprtError:
        return "urn:apprt:problem:invalid-input"
    return f"urn:apprt:problem:{_kebab(type(error).__name__)}"


async def _on_apprt_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ApprtError)
    status: int = getattr(exc, "status_code", 400)
    return problem_response(
        request,
        status,
        title=exc.title,
        detail=str(exc),
        type_=problem_type(exc),
        problems=exc.problems,
        headers=getattr(exc, "headers", None),
    )


async def _on_http_exception(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem_response(request, exc.status_code, detail=detail, headers=exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        Problem(
            reason=str(error.get("msg", "invalid")),
            location=".".join(str(part) for part in error.get("loc", ())),
            hint="add this field" if error.get("type") == "missing" else "",
        )
        for error in exc.errors()
    ]
    # The offending input is not echoed back: it may be large, or a secret.
    return problem_response(
        request,
        422,
        title="invalid request",
        detail=f"{len(problems)} problem(s) in the request",
        type_="urn:apprt:problem:invalid-request",
        problems=problems,
    )


async def unexpected_error_response(request: Request, exc: Exception) -> ProblemResponse:
    error_id = secrets.token_hex(8)
    log.error(
        "http.unexpected_error",
        error_id=error_id,
        method=request.method,
        path=request.url.path,
        exc_info=exc,
    )
    return problem_response(
        request,
        500,
        detail=f"an unexpected error occurred; the server log has the details "
        f"under error id {error_id}",
        error_id=error_id,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApprtError, _on_apprt_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, unexpected_error_response)


# -- platform routes ----------------------------------------------------------------


class DatabaseUnavailableError(ApprtError):
    status_code: ClassVar[int] = 503


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: Literal["ok"]


health_router = APIRouter(tags=["platform"])


@health_router.get(
    "/healthz",
    summary="Liveness and database reachability",
    responses={503: _PROBLEM_RESPONSE_DOC},
)
def healthz(engine: Annotated[Engine, Depends(get_engine)]) -> Health:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("healthz.database_unreachable", error=str(exc.__cause__ or exc))
        raise DatabaseUnavailableError(
            [
                Problem(
                    reason="the database does not answer",
                    location="database",
                    hint="check APPRT_DATABASE_URL and the database server; see the log",
                )
            ],
            title="database unavailable",
        ) from None
    return Health(status="ok", version=__version__, database="ok")


# -- composition --------------------------------------------------------------------


def _start(app: FastAPI, settings: Settings) -> None:
    """Prepare the data directory, database, blob store and platform admin."""
    # 0700: the directory holds the admin token and the database (only applies
    # when we create it; an operator's existing directory keeps its mode).
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(settings)
    try:
        upgrade_to_head(engine)
        blob_store = LocalBlobStore(settings.resolved_blob_dir())
        blob_store.remove_stale_temp_files()
        factory = session_factory(engine)
        with session_scope(factory) as session:
            bootstrap_platform_admin(session, settings)
    except ApprtError as exc:
        engine.dispose()
        log.error("startup.refused", problems=[str(p) for p in exc.problems])
        raise
    except BaseException:
        engine.dispose()
        raise
    app.state.engine = engine
    app.state.session_factory = factory
    app.state.blob_store = blob_store
    log.info(
        "startup.ready",
        version=__version__,
        data_dir=str(settings.data_dir),
        database=engine.url.render_as_string(hide_password=True),
    )


#: The domains that make up the platform, in start-up order. Each module may offer
#: ``router`` (an APIRouter included in the app) and ``lifespan(app)`` (an async
#: context manager entered after the core above is ready, exited in reverse order).
#: Adding a domain to the platform is adding its module here.
COMPONENTS: tuple[str, ...] = (
    "apprt.accounts.views",
    "apprt.jobs.views",
    "apprt.registry.component",
    "apprt.registry.tuf.component",
    "apprt.registry.distribution",
    "apprt.observe.metrics",
    "apprt.runtime.views",
    "apprt.services.views",  # right after the runtime: platform.sock before any app starts
    "apprt.runtime.egress_proxies",  # egress.sock for apps granted network:<host>:<port>
    "apprt.gateway.views",
    "apprt.install.component",
    "apprt.shell.views",
)


#: What ``apprt registry serve`` runs: the registry alone (a subset of
#: :data:`COMPONENTS`, in the same order). Accounts, because publishers and the
#: platform admin authenticate with their tokens; the registry API; its TUF repository;
#: content-addressed ``/blobs/``. No runtime, gateway, install engine or shell.
REGISTRY_COMPONENTS: tuple[str, ...] = (
    "apprt.accounts.views",
    "apprt.registry.component",
    "apprt.registry.tuf.component",
    "apprt.registry.distribution",
)


def _load_components(names: Sequence[str]) -> list[ModuleType]:
    unknown = [name for name in names if name not in COMPONENTS]
    if unknown:
        raise ValueError(f"not platform components: {', '.join(unknown)} (see COMPONENTS)")
    # Start-up order is the platform's, whatever order the subset was given in.
    return [importlib.import_module(name) for name in COMPONENTS if name in names]


def create_app(
    settings: Settings | None = None, *, components: Sequence[str] = COMPONENTS
) -> FastAPI:
    """The platform's ASGI app; nothing touches disk until its lifespan starts.

    ``components`` chooses which of :data:`COMPONENTS` the app is made of (e.g.
    :data:`REGISTRY_COMPONENTS`); ``/healthz`` and ``/openapi.json`` are always there.
    """
    settings = settings if settings is not None else Settings()
    loaded = _load_components(components)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_start, app, settings)
        try:
            async with AsyncExitStack() as stack:
                for component in loaded:
                    if hasattr(component, "lifespan"):
                        await stack.enter_async_context(component.lifespan(app))
                yield
        finally:
            app.state.engine.dispose()

    app = FastAPI(
        title="apprt",
        summary="The app runtime of an AI-companions platform.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(health_router)
    for component in loaded:
        if hasattr(component, "router"):
            app.include_router(component.router)
    return app
