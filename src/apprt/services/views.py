"""The platform services as a platform component: the platform API's lifespan, and routes.

``lifespan`` starts :class:`~apprt.services.api.PlatformApi` on top of the runtime's
supervisor (``app.state.platform_api``): every running instance gets its
``platform.sock``. Without a runtime (driver unusable here) there is nothing to serve.

Routes, for an organization's admins (strangers get 404, members 403):

``GET  /api/v1/orgs/{org}/audit``                          the org's platform API audit log
``GET  /api/v1/orgs/{org}/apps/{app}/backups``             the app's state backups
``POST /api/v1/orgs/{org}/apps/{app}/backups``             back its state up now
``GET  /api/v1/orgs/{org}/apps/{app}/backups/{name}``      download one (JSON)
``POST /api/v1/orgs/{org}/apps/{app}/backups/restore``     restore one (``name``), an
                                                           uploaded document (``data``),
                                                           or the newest
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from apprt.accounts.models import OrgRole
from apprt.accounts.orgs import org_for
from apprt.accounts.views import CurrentUser
from apprt.db.base import utcnow
from apprt.db.dependencies import DbSession
from apprt.services import audit
from apprt.services import backup as backups
from apprt.services.api import PlatformApi
from apprt.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.platform_api = None
    supervisor = getattr(app.state, "supervisor", None)
    if supervisor is None:
        yield
        return
    api = PlatformApi(app.state.settings, app.state.session_factory, supervisor)
    await api.start()
    app.state.platform_api = api
    try:
        yield
    finally:
        app.state.platform_api = None
        await api.aclose()


router = APIRouter(prefix="/api/v1/orgs/{org}", tags=["services"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.get("/audit", summary="The organization's platform API audit log (org admin)")
def audit_log(
    org: str,
    session: DbSession,
    user: CurrentUser,
    app: Annotated[str | None, Query(description="Only this app id")] = None,
    outcome: Annotated[
        str | None, Query(description="Only this outcome: " + ", ".join(audit.OUTCOMES))
    ] = None,
    before: Annotated[int | None, Query(description="Older than this event id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> audit.AuditPage:
    org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    return audit.events(session, org, app_id=app, outcome=outcome, before=before, limit=limit)


class BackupOut(backups.BackupInfo):
    keys: int | None = None
    bytes: int | None = None


class RestoreIn(BaseModel):
    name: str | None = Field(None, description="A backup's name; omitted: the newest")
    data: dict[str, Any] | None = Field(
        None, description="A backup document to restore instead (what a download gives)"
    )


class RestoreOut(BaseModel):
    restored_from: str
    keys: int
    bytes: int
    safety_backup: str | None = Field(
        None, description="The backup of the state as it was before the restore"
    )
    at: datetime


@router.get("/apps/{app_id}/backups", summary="The app's state backups, newest first")
def list_backups(
    org: str, app_id: str, request: Request, session: DbSession, user: CurrentUser
) -> list[backups.BackupInfo]:
    org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    return backups.list_backups(org, app_id, data_dir=_settings(request).data_dir)


@router.post(
    "/apps/{app_id}/backups", summary="Back the app's state up now (org admin)", status_code=201
)
def create_backup(
    org: str, app_id: str, request: Request, session: DbSession, user: CurrentUser
) -> BackupOut:
    org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    settings = _settings(request)
    path = backups.backup(
        session, org, app_id, data_dir=settings.data_dir, keep=settings.backup_keep
    )
    document = backups.read_backup(path)
    info = next(
        b
        for b in backups.list_backups(org, app_id, data_dir=settings.data_dir)
        if b.name == path.name
    )
    audit.record(
        session,
        org=org,
        app_id=app_id,
        user=user.name,
        operation="state.backup",
        outcome="ok",
        target=path.name,
        detail=f"{document.get('keys', 0)} keys, {document.get('bytes', 0)} bytes",
    )
    return BackupOut(**info.model_dump(), keys=document.get("keys"), bytes=document.get("bytes"))


@router.get(
    "/apps/{app_id}/backups/{name}",
    summary="Download a backup (the JSON document restore accepts)",
    response_class=JSONResponse,
)
def download_backup(
    org: str, app_id: str, name: str, request: Request, session: DbSession, user: CurrentUser
) -> JSONResponse:
    org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    path = backups.backup_path(org, app_id, name, data_dir=_settings(request).data_dir)
    return JSONResponse(backups.read_backup(path))


@router.post("/apps/{app_id}/backups/restore", summary="Restore the app's state (org admin)")
def restore_backup(
    org: str,
    app_id: str,
    body: RestoreIn,
    request: Request,
    session: DbSession,
    user: CurrentUser,
) -> RestoreOut:
    org_for(session, user, org, need=OrgRole.ORG_ADMIN)
    settings = _settings(request)
    path = (
        backups.backup_path(org, app_id, body.name, data_dir=settings.data_dir)
        if body.name and body.data is None
        else None
    )
    result = backups.restore(
        session,
        org,
        app_id,
        path=path,
        data=body.data,
        data_dir=settings.data_dir,
        keep=settings.backup_keep,
    )
    audit.record(
        session,
        org=org,
        app_id=app_id,
        user=user.name,
        operation="state.restore",
        outcome="ok",
        target=result.restored_from,
        detail=f"{result.keys} keys, {result.bytes} bytes; previous state in "
        f"{result.safety_backup.name if result.safety_backup else '-'}",
    )
    return RestoreOut(
        restored_from=result.restored_from,
        keys=result.keys,
        bytes=result.bytes,
        safety_backup=result.safety_backup.name if result.safety_backup else None,
        at=utcnow(),
    )
