"""HTTP side of installations: ``/api/v1/orgs/{org}/installations``.

==========================================================  ==========  ===================
route                                                       who         what
==========================================================  ==========  ===================
``GET  /api/v1/orgs/{org}/installations``                   member      the org's apps
``GET  /api/v1/orgs/{org}/installations/{app}``             member      one, with runtime
                                                                        state and notices
``GET  /api/v1/orgs/{org}/installations/{app}/consent``     org admin   what installing
                                                                        ``app@range`` asks
                                                                        for: plan,
                                                                        permissions,
                                                                        settings schema
``POST /api/v1/orgs/{org}/installations``                   org admin   install: 202 + job
``DELETE /api/v1/orgs/{org}/installations/{app}``           org admin   uninstall: 202 + job
``GET  /api/v1/orgs/{org}/apps/{app}/update``               org admin   what updating to
                                                                        the newest version
                                                                        in ``range`` does:
                                                                        version, new
                                                                        permissions, settings
``POST /api/v1/orgs/{org}/apps/{app}/update``               org admin   update: 202 + job
==========================================================  ==========  ===================

A request is checked at once (unknown app or version, range, compatibility,
dependency conflicts, quotas, consent, settings): refusals are problems with their
status and nothing is created. Accepted, it becomes a durable job (202 with its id;
follow it at ``/api/v1/jobs/{id}/events``), which checks everything again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from apprt.accounts.models import Organization, OrgRole
from apprt.accounts.orgs import org_for
from apprt.accounts.views import CurrentUser
from apprt.db.dependencies import DbSession
from apprt.install.errors import InstallError
from apprt.install.models import Installation, InstallState
from apprt.install.services import (
    UPDATE,
    Compatible,
    PlannedApp,
    carry_config,
    check_not_installed,
    check_quota,
    check_uninstallable,
    choose_compatible,
    choose_update,
    consent_items,
    get_installation,
    grants_for,
    installations_of,
    new_permissions,
    newer_versions,
    pick_versions,
    plan_dependencies,
    planned_update,
    settle,
    updatable,
    update_grants,
    validate_config,
)
from apprt.install.steps import INSTALL, UNINSTALL, InstallEnv
from apprt.jobs.engine import JobRunner
from apprt.registry.services import queries

installations = APIRouter(prefix="/api/v1/orgs/{org}/installations", tags=["installations"])
apps = APIRouter(prefix="/api/v1/orgs/{org}/apps", tags=["installations"])


class InstallIn(BaseModel):
    app: str = Field(description="App id, e.g. com.example.sales-dashboard")
    range: str = Field("*", description="npm range of versions (default: the newest)")
    config: dict[str, Any] = Field(
        default_factory=dict, description="The organization's settings for the app"
    )
    accept_permissions: bool = Field(
        False, description="Consent to every permission the plan's apps declare"
    )
    consent: dict[str, list[str]] | None = Field(
        None, description="Permissions consented to, per app id ('*': every app)"
    )
    restore_data: bool = Field(
        True, description="Restore data kept from an earlier uninstall (within the retention)"
    )


class JobAccepted(BaseModel):
    job_id: int
    job: str
    events: str
    app: str
    version: str
    plan: list[dict[str, Any]]
    notices: list[dict[str, str]]
    url: str


class UpdateIn(BaseModel):
    range: str = Field("*", description="npm range to update within (default: the newest)")
    accept_permissions: bool = Field(
        False, description="Consent to every permission the new version adds"
    )
    consent: dict[str, list[str]] | None = Field(
        None, description="Permissions consented to, per app id ('*': every app)"
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings to change, over the installed ones (the rest carried over)",
    )


class UpdatePreview(BaseModel):
    app: str
    from_version: str
    version: str
    #: Permissions the new version declares that the installed one was not granted.
    new_permissions: list[dict[str, Any]]
    permissions: list[str]
    config: dict[str, Any]
    notices: list[dict[str, str]]


class UpdateAccepted(JobAccepted):
    from_version: str


class InstallationOut(BaseModel):
    app_id: str
    version: str
    state: InstallState
    requested: bool
    tenancy: str
    has_backend: bool
    config: dict[str, Any]
    grants: list[str]
    dependencies: dict[str, str]
    memory_mb: int
    storage_mb: int
    installed_by: str
    job_id: int | None
    url: str
    restored_from: str | None
    created_at: datetime
    activated_at: datetime | None
    #: The runtime's view: running, suspended, failed... (None: no backend, or no runtime).
    runtime_state: str | None = None
    health: str = ""


class InstallationDetail(InstallationOut):
    notices: list[dict[str, str]] = []
    instance: dict[str, Any] | None = None


class ConsentOut(BaseModel):
    app: str
    version: str
    plan: list[dict[str, Any]]
    permissions: list[dict[str, Any]]
    config_schema: dict[str, Any]
    config_defaults: dict[str, Any]
    notices: list[dict[str, str]]


def _env(request: Request) -> InstallEnv:
    env: InstallEnv = request.app.state.install
    return env


def _runner(request: Request, kind: str | None = None) -> JobRunner:
    """The job runner; with ``kind``, refused (503) when it does not run that kind."""
    runner: JobRunner = request.app.state.jobs
    if kind is not None and kind not in runner.kinds:
        raise InstallError.one("the install engine is not running", title="unavailable")
    return runner


def _job_links(response: Response, job_id: int) -> dict[str, Any]:
    """The accepted job's addresses, for the answer; its ``Location`` header set."""
    response.headers["Location"] = f"/api/v1/jobs/{job_id}"
    return {
        "job_id": job_id,
        "job": f"/api/v1/jobs/{job_id}",
        "events": f"/api/v1/jobs/{job_id}/events",
    }


def _health(env: InstallEnv, org: str, row: Installation) -> tuple[str | None, str]:
    if row.state is not InstallState.ACTIVE:
        return None, row.state.value
    if not row.has_backend:
        return None, "ok (frontend only)"
    supervisor = env.supervisor
    if supervisor is None:
        return None, "unknown (runtime off)"
    slot = supervisor.lookup(org, row.app_id)
    if slot is None:
        return None, "not deployed"
    state = slot.state.value
    health = {
        "running": "ok",
        "suspended": "ok (asleep, wakes on request)",
        "installed": "ok (starts on first request)",
        "loading": "starting",
        "failed": "failed",
        "updating": "updating",
    }.get(state, state)
    return state, health


def _out(env: InstallEnv, org: str, row: Installation) -> InstallationOut:
    runtime_state, health = _health(env, org, row)
    return InstallationOut(
        app_id=row.app_id,
        version=row.version,
        state=row.state,
        requested=row.requested,
        tenancy=row.tenancy,
        has_backend=row.has_backend,
        config=row.config,
        grants=row.grants,
        dependencies=row.dependencies,
        memory_mb=row.memory_mb,
        storage_mb=row.storage_mb,
        installed_by=row.installed_by,
        job_id=row.job_id,
        url=row.url,
        restored_from=row.restored_from,
        created_at=row.created_at,
        activated_at=row.activated_at,
        runtime_state=runtime_state,
        health=health,
    )


def _plan(
    session: Session, org: Organization, app: str, range_text: str
) -> tuple[list[PlannedApp], list[dict[str, str]]]:
    check_not_installed(session, org, app)
    matching = pick_versions(session, app, range_text)
    compatible = choose_compatible(session, org, app, matching)
    plan = plan_dependencies(session, org, app, compatible.version.version)
    return plan, compatible.notices


def _submit(
    runner: JobRunner,
    session: Session,
    kind: str,
    params: dict[str, Any],
    subject: str,
    actor: str,
    org: Organization,
) -> int:
    """Create the job in the request's transaction, commit, then start it.

    (A second transaction here would wait for the request's own write lock on SQLite:
    authenticating may have written the token's ``last_used_at``.)
    """
    job = runner.create(session, kind, params, subject=subject, actor=actor, org_id=org.id)
    session.commit()
    runner.start(job.id)
    return job.id


@installations.get("", summary="The organization's installed apps")
def list_installations(
    org: str, request: Request, user: CurrentUser, session: DbSession
) -> list[InstallationOut]:
    organization = org_for(session, user, org)
    env = _env(request)
    return [_out(env, org, settle(session, row)) for row in installations_of(session, organization)]


@installations.get("/{app}", summary="One installed app: version, state, settings, grants, health")
def get_installation_route(
    org: str, app: str, request: Request, user: CurrentUser, session: DbSession
) -> InstallationDetail:
    organization = org_for(session, user, org)
    row = settle(session, get_installation(session, organization, app))
    env = _env(request)
    out = _out(env, org, row)
    notices = [
        {
            "app_id": n.app_id,
            "version": n.version,
            "kind": n.state.value,
            "message": n.message,
            "replacement": n.replacement,
        }
        for n in queries.notices(session, {row.app_id: row.version})
    ]
    instance = None
    supervisor = env.supervisor
    if supervisor is not None and supervisor.lookup(org, app) is not None:
        info = supervisor.get(org, app)
        instance = {
            "id": info.id,
            "state": info.state.value,
            "driver": info.driver,
            "pid": info.pid,
            "restart_count": info.restart_count,
            "started_at": info.started_at,
            "orgs": info.orgs if info.tenancy == "shared" else [org],
        }
    return InstallationDetail(**out.model_dump(), notices=notices, instance=instance)


@installations.get("/{app}/consent", summary="What installing the app asks for (before installing)")
def consent_route(
    org: str,
    app: str,
    user: CurrentUser,
    session: DbSession,
    range_: Annotated[str, Query(alias="range")] = "*",
) -> ConsentOut:
    organization = org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    plan, notices = _plan(session, organization, app, range_)
    requested = next(p for p in plan if p.requested)
    from apprt.manifest import config_defaults

    return ConsentOut(
        app=app,
        version=requested.version,
        plan=[p.as_dict() for p in plan],
        permissions=consent_items(plan),
        config_schema=requested.manifest.config,
        config_defaults=config_defaults(requested.manifest.config),
        notices=notices,
    )


@installations.post("", status_code=202, summary="Install an app (a job; follow its events)")
def install_route(
    org: str,
    body: InstallIn,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: DbSession,
) -> JobAccepted:
    organization = org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    plan, notices = _plan(session, organization, body.app, body.range)
    check_quota(session, organization, plan)
    grants_for(plan, accept_all=body.accept_permissions, consent=body.consent)
    requested = next(p for p in plan if p.requested)
    validate_config(requested.manifest, body.config)
    for p in plan:
        if not p.requested:
            validate_config(p.manifest, {})
    if any(p.has_backend for p in plan):
        _env(request).require_supervisor()
    runner = _runner(request, INSTALL)
    params = {
        "org": org,
        "org_id": organization.id,
        "app": body.app,
        "range": body.range,
        "config": body.config,
        "accept_permissions": body.accept_permissions,
        "consent": body.consent,
        "restore_data": body.restore_data,
        "actor": user.name,
    }
    job_id = _submit(runner, session, INSTALL, params, f"{org}/{body.app}", user.name, organization)
    return JobAccepted(
        **_job_links(response, job_id),
        app=body.app,
        version=requested.version,
        plan=[p.as_dict() for p in plan],
        notices=notices,
        url=f"/apps/{org}/{body.app}/",
    )


@installations.delete(
    "/{app}", status_code=202, summary="Uninstall an app (a job; data is retained)"
)
def uninstall_route(
    org: str,
    app: str,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: DbSession,
    keep_data: bool = True,
) -> JobAccepted:
    organization = org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    row = get_installation(session, organization, app)
    check_uninstallable(session, organization, row)
    runner = _runner(request)
    params = {
        "org": org,
        "org_id": organization.id,
        "app": app,
        "keep_data": keep_data,
        "actor": user.name,
    }
    job_id = _submit(runner, session, UNINSTALL, params, f"{org}/{app}", user.name, organization)
    return JobAccepted(
        **_job_links(response, job_id),
        app=app,
        version=row.version,
        plan=[],
        notices=[],
        url=row.url,
    )


# -- update ------------------------------------------------------------------------------


def _update_plan(
    session: Session, org: Organization, app: str, range_text: str, config: dict[str, Any]
) -> tuple[Installation, PlannedApp, Compatible, dict[str, Any]]:
    row = updatable(session, org, app)
    newer = newer_versions(session, org, row, range_text)
    compatible = choose_update(session, org, row, newer)
    planned = planned_update(compatible.version)
    check_quota(session, org, [planned], replacing=row)
    return row, planned, compatible, carry_config(row, planned.manifest, config)


@apps.get("/{app}/update", summary="What updating the app does (before updating)")
def update_preview_route(
    org: str,
    app: str,
    user: CurrentUser,
    session: DbSession,
    range_: Annotated[str, Query(alias="range")] = "*",
) -> UpdatePreview:
    organization = org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    row, planned, compatible, config = _update_plan(session, organization, app, range_, {})
    new = set(new_permissions(row, planned.manifest))
    return UpdatePreview(
        app=app,
        from_version=row.version,
        version=planned.version,
        new_permissions=[
            {"permission": r.permission, "reason": r.reason, "sensitive": r.parsed.sensitive}
            for r in planned.manifest.permissions
            if r.permission in new
        ],
        permissions=planned.permissions,
        config=config,
        notices=compatible.notices,
    )


@apps.post("/{app}/update", status_code=202, summary="Update an app (a job; follow its events)")
def update_route(
    org: str,
    app: str,
    body: UpdateIn,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: DbSession,
) -> UpdateAccepted:
    organization = org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    row, planned, compatible, _config = _update_plan(
        session, organization, app, body.range, body.config
    )
    update_grants(row, planned, accept_all=body.accept_permissions, consent=body.consent)
    if row.has_backend:
        _env(request).require_supervisor()
    runner = _runner(request, UPDATE)
    params = {
        "org": org,
        "org_id": organization.id,
        "app": app,
        "range": body.range,
        "config": body.config,
        "accept_permissions": body.accept_permissions,
        "consent": body.consent,
        "actor": user.name,
        "previous_job_id": row.job_id,
    }
    from_version = row.version
    job_id = _submit(runner, session, UPDATE, params, f"{org}/{app}", user.name, organization)
    return UpdateAccepted(
        **_job_links(response, job_id),
        app=app,
        version=planned.version,
        from_version=from_version,
        plan=[planned.as_dict()],
        notices=compatible.notices,
        url=row.url,
    )


#: The component's routes: installations, and the update of an installed app.
router = APIRouter()
router.include_router(installations)
router.include_router(apps)
