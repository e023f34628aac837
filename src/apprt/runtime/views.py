"""The runtime as a platform component: the supervisor's lifespan and its API routes.

``lifespan`` builds the sandbox driver named by ``APPRT_RUNTIME_DRIVER``, starts the
:class:`~apprt.runtime.supervisor.Supervisor` (re-adopting sandboxes left running by a
previous platform process) and stores it on ``app.state.supervisor``. If the driver
cannot be used here (not installed, unhealthy host), the platform still starts, the
runtime is off, the reason is logged and every runtime route and app request answers
503 with it.

Routes (``/api/v1/runtime``), organization-scoped like the rest of the API (strangers
get 404): members read an app's state and history; org admins also read its logs and
suspend, activate or restart it. A shared-tenancy instance serves several organizations,
so its logs and controls are for the platform admin. An app's state includes its latest
limit events (``/limit-events`` lists more: :mod:`apprt.runtime.limits`);
``/api/v1/runtime/driver`` says which driver runs sandboxes and what it enforces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, ClassVar

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from apprt.accounts.models import OrgRole, Role
from apprt.accounts.orgs import org_for
from apprt.accounts.views import CurrentUser
from apprt.db.dependencies import DbSession
from apprt.errors import ApprtError, ForbiddenError, Problem
from apprt.gateway.identity import load_or_create_secret
from apprt.manifest import Tenancy
from apprt.runtime.limits import LimitEventInfo
from apprt.runtime.supervisor import (
    InstanceInfo,
    InstanceNotFoundError,
    Slot,
    Supervisor,
    TransitionInfo,
    make_driver,
)
from apprt.sdk.identity import derive_key
from apprt.settings import Settings

log = structlog.get_logger(__name__)


class RuntimeUnavailableError(ApprtError):
    status_code: ClassVar[int] = 503


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.supervisor = None
    app.state.runtime_error = None
    try:
        driver = await run_in_threadpool(make_driver, settings)
    except ApprtError as exc:
        app.state.runtime_error = exc
        log.error(
            "runtime.disabled",
            driver=settings.runtime_driver,
            problems=[str(p) for p in exc.problems],
        )
        yield
        return
    secret = await run_in_threadpool(load_or_create_secret, settings)
    metrics = getattr(app.state, "metrics", None)
    supervisor = Supervisor(
        settings,
        app.state.session_factory,
        driver,
        instance_key=partial(derive_key, secret),
        metrics=metrics,
    )
    await supervisor.start()
    if metrics is not None:
        metrics.set_instance_source(supervisor.samples)
    app.state.supervisor = supervisor
    try:
        yield
    finally:
        if metrics is not None:
            metrics.set_instance_source(None)
        await supervisor.close()


def get_supervisor(request: Request) -> Supervisor:
    supervisor: Supervisor | None = request.app.state.supervisor
    if supervisor is None:
        error: ApprtError | None = getattr(request.app.state, "runtime_error", None)
        raise RuntimeUnavailableError(
            list(error.problems) if error else [Problem("the runtime is not running")],
            title="runtime unavailable",
        )
    return supervisor


SupervisorDep = Annotated[Supervisor, Depends(get_supervisor)]

router = APIRouter(prefix="/api/v1/runtime", tags=["runtime"])


class InstanceDetail(InstanceInfo):
    history: list[TransitionInfo]
    limit_events: list[LimitEventInfo] = Field(
        default_factory=list, description="The latest limits it hit, newest first"
    )


class DriverInfo(BaseModel):
    name: str
    healthy: bool
    detail: str
    capabilities: dict[str, bool] = Field(description="What the driver enforces on this host")
    allow_untrusted: bool = Field(
        description="The operator lets it run untrusted apps whose limits it cannot enforce"
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="What its fingerprint found (platform admin only)"
    )


class IdlePolicyIn(BaseModel):
    org: str = Field("", description="Organization; empty: every organization")
    app_id: str = Field("", description="App id; empty: every app")
    idle_timeout_s: float | None = Field(
        ..., ge=0, description="Seconds without a request before suspending (0: never); null clears"
    )


def _slot_for(
    supervisor: Supervisor,
    session: DbSession,
    user: CurrentUser,
    org: str,
    app_id: str,
    *,
    admin: bool,
) -> Slot:
    """The instance of ``app_id`` in ``org`` if ``user`` may see (or, ``admin``, control) it."""
    org_for(session, user, org, need=OrgRole.ORG_ADMIN if admin else OrgRole.MEMBER)
    slot = supervisor.lookup(org, app_id)
    if slot is None:
        raise InstanceNotFoundError(org, app_id)
    if admin and slot.tenancy is Tenancy.shared and user.role is not Role.PLATFORM_ADMIN:
        raise ForbiddenError.single(
            f"{app_id} is shared by several organizations; only the platform admin "
            "controls it and reads its logs",
            location="app_id",
            hint="ask the platform admin",
        )
    return slot


@router.get("/apps/{org}", summary="Instances serving an organization's apps")
def list_org_instances(
    org: str, supervisor: SupervisorDep, session: DbSession, user: CurrentUser
) -> list[InstanceInfo]:
    org_for(session, user, org)
    return [
        supervisor.info(slot)
        for (route_org, _), slot in sorted(supervisor.routes.items())
        if route_org == org
    ]


@router.get("/instances", summary="Every instance on this node (platform admin)")
def list_instances(supervisor: SupervisorDep, user: CurrentUser) -> list[InstanceInfo]:
    if user.role is not Role.PLATFORM_ADMIN:
        raise ForbiddenError.single(
            "listing every instance needs the platform admin",
            location="Authorization",
            hint="use `apprt runtime list --org ORG` for one organization",
        )
    return supervisor.list_instances()


@router.get("/apps/{org}/{app_id}", summary="An app's instance: state and transition history")
async def instance_state(
    org: str, app_id: str, supervisor: SupervisorDep, session: DbSession, user: CurrentUser
) -> InstanceDetail:
    slot = await run_in_threadpool(_slot_for, supervisor, session, user, org, app_id, admin=False)
    history = await supervisor.history(slot.id)
    events = await supervisor.limit_events(slot.id, org=org, limit=20)
    return InstanceDetail(
        **supervisor.info(slot).model_dump(), history=history, limit_events=events
    )


@router.get(
    "/apps/{org}/{app_id}/limit-events",
    summary="Limits an app's instance hit (memory, pids, cpu, storage, timeouts, egress)",
)
async def instance_limit_events(
    org: str,
    app_id: str,
    supervisor: SupervisorDep,
    session: DbSession,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LimitEventInfo]:
    slot = await run_in_threadpool(_slot_for, supervisor, session, user, org, app_id, admin=False)
    return await supervisor.limit_events(slot.id, org=org, limit=limit)


@router.get("/driver", summary="The sandbox driver: health and what it enforces here")
async def driver_info(supervisor: SupervisorDep, user: CurrentUser) -> DriverInfo:
    info = DriverInfo(**await run_in_threadpool(supervisor.driver_info))
    if user.role is not Role.PLATFORM_ADMIN:
        info.attributes = {}
    return info


@router.get(
    "/apps/{org}/{app_id}/logs",
    summary="An app's output (stdout and stderr), optionally followed",
    response_class=PlainTextResponse,
)
async def instance_logs(
    org: str,
    app_id: str,
    supervisor: SupervisorDep,
    session: DbSession,
    user: CurrentUser,
    tail: Annotated[int, Query(ge=0, le=100_000)] = 100,
    follow: bool = False,
) -> StreamingResponse:
    slot = await run_in_threadpool(_slot_for, supervisor, session, user, org, app_id, admin=True)
    lines = await run_in_threadpool(slot.log.tail, tail)
    start = await run_in_threadpool(slot.log.size)

    async def body() -> AsyncIterator[bytes]:
        if lines:
            yield ("\n".join(lines) + "\n").encode()
        if follow:
            async for data in slot.log.follow(start=start):
                yield data

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8")


@router.post("/apps/{org}/{app_id}/suspend", summary="Suspend (hibernate) an app's instance")
async def suspend(
    org: str, app_id: str, supervisor: SupervisorDep, session: DbSession, user: CurrentUser
) -> InstanceInfo:
    await run_in_threadpool(_slot_for, supervisor, session, user, org, app_id, admin=True)
    return await supervisor.suspend(org, app_id, reason=f"suspended by {user.name}")


@router.post("/apps/{org}/{app_id}/activate", summary="Start an Installed or Suspended app")
async def activate(
    org: str, app_id: str, supervisor: SupervisorDep, session: DbSession, user: CurrentUser
) -> InstanceInfo:
    await run_in_threadpool(_slot_for, supervisor, session, user, org, app_id, admin=True)
    return await supervisor.activate(org, app_id)


@router.post("/apps/{org}/{app_id}/restart", summary="Restart an app (also a Failed one)")
async def restart(
    org: str, app_id: str, supervisor: SupervisorDep, session: DbSession, user: CurrentUser
) -> InstanceInfo:
    await run_in_threadpool(_slot_for, supervisor, session, user, org, app_id, admin=True)
    return await supervisor.restart(org, app_id)


@router.put("/idle-policy", summary="Idle timeout for an app, an organization, or both")
async def put_idle_policy(
    body: IdlePolicyIn, supervisor: SupervisorDep, session: DbSession, user: CurrentUser
) -> IdlePolicyIn:
    if body.org:
        await run_in_threadpool(org_for, session, user, body.org, need=OrgRole.ORG_ADMIN)
    elif user.role is not Role.PLATFORM_ADMIN:
        raise ForbiddenError.single(
            "a policy for every organization needs the platform admin",
            location="org",
            hint="give the organization the policy is for",
        )
    await supervisor.set_idle_policy(body.org, body.app_id, body.idle_timeout_s)
    return body
