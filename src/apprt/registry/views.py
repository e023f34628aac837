"""The registry's HTTP API, under ``/api/v1/registry``.

Publishers (platform admin, or the publisher itself where noted)::

    POST /publishers                                   create (admin)
    GET  /publishers                                   list (admin)
    GET  /publishers/{name}                            one, with its keys
    POST /publishers/{name}/keys                       register an Ed25519 public key
    GET  /publishers/{name}/keys
    POST /publishers/{name}/keys/{key_id}/revoke
    POST /publishers/{name}/tokens                     mint a scoped token (admin)
    GET  /publishers/{name}/tokens
    POST /publishers/{name}/tokens/{token_id}/revoke

Uploads (publisher tokens)::

    POST /uploads[?backport=true]    raw application/octet-stream or multipart ``file``
    GET  /uploads                    the caller's recent uploads (admin: everyone's)
    GET  /uploads/{id}               the job: state, every check's result, history

Review and lifecycle::

    GET  /reviews                                      versions waiting (admin)
    POST /apps/{app_id}/versions/{version}/approve     (admin)
    POST /apps/{app_id}/versions/{version}/reject      (admin; reason required)
    POST /apps/{app_id}/versions/{version}/deprecate   message, replacement
    POST /apps/{app_id}/versions/{version}/yank        reason
    POST /apps/{app_id}/versions/{version}/unpublish   within the window, no dependents

Marketplace (no token needed)::

    GET /search?q=&tag=&limit=
    GET /apps/{app_id}
    GET /apps/{app_id}/versions
    GET /apps/{app_id}/versions/{version}            with frontend_assets (SRI per file)
    GET /apps/{app_id}/versions/{version}/history
    GET /apps/{app_id}/versions/{version}/dependencies[?platform=]
    GET /apps/{app_id}/compatible[?platform=]

Handlers are plain ``def`` (run in the thread pool) except the upload, which streams
the body asynchronously and hands the blocking work to a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from apprt import PLATFORM_API_VERSION
from apprt.db.dependencies import DbSession
from apprt.db.engine import session_scope
from apprt.registry import distribution, receive
from apprt.registry.auth import CurrentPrincipal, OptionalPrincipal, Principal
from apprt.registry.config import RegistryConfig
from apprt.registry.errors import NotFoundError
from apprt.registry.hooks import PublicationListener
from apprt.registry.models import (
    INSTALLABLE_STATES,
    AppVersion,
    CheckResult,
    PublisherKey,
    PublisherToken,
    RegistryApp,
    Transition,
    Upload,
    VersionState,
)
from apprt.registry.search import backend_for
from apprt.registry.services import lifecycle, publishers, queries, uploads

PREFIX = "/api/v1/registry"
router = APIRouter(prefix=PREFIX, tags=["registry"])

AppIdPath = Annotated[str, Path(max_length=128, description="Reverse-DNS app id")]
VersionPath = Annotated[str, Path(max_length=64, description="SemVer version")]
NamePath = Annotated[str, Path(max_length=64, description="Publisher name")]


# -- environment --------------------------------------------------------------------


def registry_config(request: Request) -> RegistryConfig:
    config: RegistryConfig = request.app.state.registry_config
    return config


def listeners(request: Request) -> list[PublicationListener]:
    found: list[PublicationListener] = request.app.state.registry_listeners
    return found


def registry_env(request: Request) -> uploads.RegistryEnv:
    state = request.app.state
    return uploads.RegistryEnv(
        sessions=state.session_factory,
        blob_store=state.blob_store,
        config=registry_config(request),
        listeners=listeners(request),
    )


# -- models -------------------------------------------------------------------------


class PublisherIn(BaseModel):
    name: str = Field(max_length=64, examples=["example"])
    display_name: str = Field("", max_length=128)


class KeyIn(BaseModel):
    public_key: str = Field(max_length=4096, description="SubjectPublicKeyInfo PEM")
    name: str = Field("", max_length=100)


class KeyOut(BaseModel):
    key_id: str
    name: str
    active: bool
    created_at: datetime
    revoked_at: datetime | None
    revoked_reason: str

    @classmethod
    def of(cls, key: PublisherKey) -> KeyOut:
        return cls(
            key_id=key.key_id,
            name=key.name,
            active=key.active,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
            revoked_reason=key.revoked_reason,
        )


class PublisherOut(BaseModel):
    name: str
    display_name: str
    created_at: datetime
    keys: list[KeyOut]
    apps: list[str]


class ReasonIn(BaseModel):
    reason: str = Field("", max_length=1000)


class TokenIn(BaseModel):
    scopes: list[Annotated[str, Field(max_length=128)]] = Field(
        max_length=20, examples=[["com.example.*"]]
    )
    name: str = Field("", max_length=100)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: PublisherToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            scopes=list(token.scopes),
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreated(TokenOut):
    publisher: str
    token: str = Field(description="The token; shown once, only its SHA-256 is stored")


class ProblemOut(BaseModel):
    file: str = ""
    location: str = ""
    reason: str
    hint: str = ""


class CheckOut(BaseModel):
    name: str
    status: str
    needs_review: bool
    summary: str
    problems: list[ProblemOut]
    details: dict[str, Any]
    duration_ms: float

    @classmethod
    def of(cls, check: CheckResult) -> CheckOut:
        return cls(
            name=check.name,
            status=check.status.value,
            needs_review=check.needs_review,
            summary=check.summary,
            problems=[ProblemOut.model_validate(p) for p in check.problems],
            details=check.details,
            duration_ms=check.duration_ms,
        )


class TransitionOut(BaseModel):
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: datetime
    upload_id: int | None
    app_id: str | None
    version: str | None

    @classmethod
    def of(cls, row: Transition) -> TransitionOut:
        return cls(
            from_state=row.from_state.value if row.from_state else None,
            to_state=row.to_state.value,
            actor=row.actor,
            reason=row.reason,
            at=row.at,
            upload_id=row.upload_id,
            app_id=row.app_id,
            version=row.version,
        )


class UploadOut(BaseModel):
    id: int
    url: str
    state: str
    publisher: str
    app_id: str | None
    version: str | None
    sha256: str
    size: int
    filename: str
    backport: bool
    idempotent: bool
    created_at: datetime
    finished_at: datetime | None
    checks: list[CheckOut]
    history: list[TransitionOut]


class DeprecationOut(BaseModel):
    message: str
    replacement: str


class YankOut(BaseModel):
    reason: str
    at: datetime | None


class VersionOut(BaseModel):
    app_id: str
    version: str
    state: str
    sha256: str
    size: int
    download: str = Field(description="Content-addressed download path of the package")
    platform: str
    dependencies: dict[str, str]
    permissions: list[str]
    backport: bool
    created_at: datetime
    published_at: datetime | None
    deprecation: DeprecationOut | None
    yank: YankOut | None
    warnings: list[str] = Field(description="What an installer should tell the user")
    upload_id: int | None

    @classmethod
    def of(cls, row: AppVersion) -> VersionOut:
        warnings = []
        deprecation = None
        yank = None
        if row.deprecation_message:
            deprecation = DeprecationOut(
                message=row.deprecation_message, replacement=row.replacement
            )
            warnings.append(
                f"deprecated: {row.deprecation_message}"
                + (f" (use {row.replacement} instead)" if row.replacement else "")
            )
        if row.state == VersionState.YANKED:
            yank = YankOut(reason=row.yank_reason, at=row.yanked_at)
            warnings.append(
                f"yanked: {row.yank_reason} (installed only when pinned exactly; "
                "existing installations keep running)"
            )
        return cls(
            app_id=row.app.app_id,
            version=row.version,
            state=row.state.value,
            sha256=row.sha256,
            size=row.size,
            download=f"/blobs/sha256/{row.sha256}",
            platform=row.platform,
            dependencies=dict(row.dependencies),
            permissions=list(row.permissions),
            backport=row.backport,
            created_at=row.created_at,
            published_at=row.published_at,
            deprecation=deprecation,
            yank=yank,
            warnings=warnings,
            upload_id=row.upload_id,
        )


class FrontendAssetOut(BaseModel):
    path: str = Field(description="Path inside the package", examples=["frontend/index.js"])
    size: int = Field(description="Bytes")
    sha256: str = Field(description="SHA-256 (hex) as the package's MANIFEST lists it")
    integrity: str = Field(
        description="Subresource Integrity string (sha256-<base64>) for integrity= attributes "
        "and import maps",
        examples=["sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="],
    )
    url: str | None = Field(
        description="Content-addressed URL where this platform's web shell serves the file "
        "once the version is installed in an organization (/assets/sha256/<package sha256>/"
        "<path under frontend/>); null when this server runs no shell (apprt registry serve)"
    )


class VersionDetail(VersionOut):
    frontend_assets: list[FrontendAssetOut] | None = Field(
        description="Every file under frontend/ with its SRI, from the package MANIFEST; "
        "null when the package is no longer stored (rejected or unpublished)"
    )


class AppOut(BaseModel):
    app_id: str
    publisher: str
    name: str
    description: str
    tags: list[str]
    latest_version: str | None

    @classmethod
    def of(cls, app: RegistryApp) -> AppOut:
        return cls(
            app_id=app.app_id,
            publisher=app.publisher.name,
            name=app.name,
            description=app.description,
            tags=list(app.tags),
            latest_version=app.latest_version or None,
        )


class AppDetail(AppOut):
    versions: list[VersionOut]


class SearchOut(BaseModel):
    query: str
    tags: list[str]
    results: list[AppOut]


class ReviewItem(BaseModel):
    app_id: str
    version: str
    publisher: str
    upload_id: int | None
    created_at: datetime
    reasons: list[str]
    permissions: dict[str, Any]


class DeprecateIn(BaseModel):
    message: str = Field(max_length=1000)
    replacement: str = Field("", max_length=200, examples=["com.example.app@2.0.0"])


class GraphOut(BaseModel):
    root: str
    platform: str
    nodes: list[dict[str, Any]]
    edges: list[dict[str, str]]
    install_order: list[str]


# -- helpers ------------------------------------------------------------------------


def upload_out(session: Session, upload: Upload) -> UploadOut:
    history = session.query(Transition).filter(Transition.upload_id == upload.id)
    rows = history.order_by(Transition.at, Transition.id).all()
    return UploadOut(
        id=upload.id,
        url=f"{PREFIX}/uploads/{upload.id}",
        state=upload.state.value,
        publisher=upload.publisher.name,
        app_id=upload.app_id,
        version=upload.version,
        sha256=upload.sha256,
        size=upload.size,
        filename=upload.filename,
        backport=upload.backport,
        idempotent=upload.idempotent,
        created_at=upload.created_at,
        finished_at=upload.finished_at,
        checks=[CheckOut.of(c) for c in upload.checks],
        history=[TransitionOut.of(t) for t in rows],
    )


def _visible_version(
    session: Session, principal: Principal | None, app_id: str, version: str
) -> AppVersion:
    row = queries.get_version(session, app_id, version)
    if row.state not in INSTALLABLE_STATES and not (
        principal is not None and principal.can_manage_app(app_id, row.app.publisher_id)
    ):
        raise NotFoundError.one(
            f"{app_id} has no published version {version!r}",
            location="version",
            hint=f"list its versions with `apprt registry versions {app_id}`",
        )
    return row


def _managed_version(
    session: Session, principal: Principal, app_id: str, version: str, action: str
) -> AppVersion:
    row = queries.get_version(session, app_id, version)
    principal.require_manage_app(app_id, row.app.publisher_id, action)
    return row


# -- publishers ---------------------------------------------------------------------


def _publisher_out(session: Session, name: str) -> PublisherOut:
    publisher = publishers.get_publisher(session, name)
    apps = session.query(RegistryApp.app_id).filter(RegistryApp.publisher_id == publisher.id)
    return PublisherOut(
        name=publisher.name,
        display_name=publisher.display_name,
        created_at=publisher.created_at,
        keys=[KeyOut.of(k) for k in publisher.keys],
        apps=sorted(a for (a,) in apps.all()),
    )


@router.post("/publishers", status_code=201, summary="Create a publisher (platform admin)")
def create_publisher(
    body: PublisherIn, principal: CurrentPrincipal, session: DbSession
) -> PublisherOut:
    principal.require_admin("create publishers")
    publishers.create_publisher(
        session, body.name, display_name=body.display_name, actor=principal.actor
    )
    return _publisher_out(session, body.name)


@router.get("/publishers", summary="Every publisher (platform admin)")
def list_publishers(principal: CurrentPrincipal, session: DbSession) -> list[PublisherOut]:
    principal.require_admin("list publishers")
    return [_publisher_out(session, p.name) for p in publishers.list_publishers(session)]


@router.get("/publishers/{name}", summary="A publisher, its keys and apps")
def get_publisher(name: NamePath, principal: CurrentPrincipal, session: DbSession) -> PublisherOut:
    publisher = publishers.get_publisher(session, name)
    principal.require_manage_publisher(publisher, "read the details")
    return _publisher_out(session, name)


@router.post("/publishers/{name}/keys", status_code=201, summary="Register a signing key")
def add_key(name: NamePath, body: KeyIn, principal: CurrentPrincipal, session: DbSession) -> KeyOut:
    publisher = publishers.get_publisher(session, name)
    principal.require_manage_publisher(publisher, "add keys")
    return KeyOut.of(publishers.add_key(session, publisher, body.public_key, name=body.name))


@router.get("/publishers/{name}/keys", summary="A publisher's signing keys")
def list_keys(name: NamePath, principal: CurrentPrincipal, session: DbSession) -> list[KeyOut]:
    publisher = publishers.get_publisher(session, name)
    principal.require_manage_publisher(publisher, "list keys")
    return [KeyOut.of(k) for k in publisher.keys]


@router.post("/publishers/{name}/keys/{key_id}/revoke", summary="Revoke a signing key")
def revoke_key(
    name: NamePath,
    key_id: Annotated[str, Path(max_length=64)],
    principal: CurrentPrincipal,
    session: DbSession,
    body: ReasonIn | None = None,
) -> KeyOut:
    publisher = publishers.get_publisher(session, name)
    principal.require_manage_publisher(publisher, "revoke keys")
    key = publishers.get_key(session, publisher, key_id)
    return KeyOut.of(publishers.revoke_key(session, key, reason=body.reason if body else ""))


@router.post("/publishers/{name}/tokens", status_code=201, summary="Mint a publisher token (admin)")
def create_token(
    name: NamePath, body: TokenIn, principal: CurrentPrincipal, session: DbSession
) -> TokenCreated:
    principal.require_admin("mint publisher tokens")
    publisher = publishers.get_publisher(session, name)
    row, token = publishers.create_token(session, publisher, scopes=body.scopes, name=body.name)
    return TokenCreated(**TokenOut.of(row).model_dump(), publisher=publisher.name, token=token)


@router.get("/publishers/{name}/tokens", summary="A publisher's tokens (never the secrets)")
def list_tokens(name: NamePath, principal: CurrentPrincipal, session: DbSession) -> list[TokenOut]:
    publisher = publishers.get_publisher(session, name)
    principal.require_manage_publisher(publisher, "list tokens")
    return [TokenOut.of(t) for t in publisher.tokens]


@router.post("/publishers/{name}/tokens/{token_id}/revoke", summary="Revoke a token")
def revoke_token(
    name: NamePath, token_id: int, principal: CurrentPrincipal, session: DbSession
) -> TokenOut:
    publisher = publishers.get_publisher(session, name)
    principal.require_manage_publisher(publisher, "revoke tokens")
    return TokenOut.of(
        publishers.revoke_token(session, publishers.get_token(session, publisher, token_id))
    )


# -- uploads ------------------------------------------------------------------------

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post(
    "/uploads",
    status_code=201,
    summary="Upload a signed package; validates it and publishes or queues it for review",
    openapi_extra=_UPLOAD_BODY,
    responses={200: {"description": "Identical to an existing version (idempotent)"}},
)
async def upload_package(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    backport: Annotated[
        bool, Query(description="Allow a version below the newest published one")
    ] = False,
) -> UploadOut:
    publisher = principal.require_publisher("upload packages")
    env = registry_env(request)
    ref, filename = await receive.receive_package(
        request, env.blob_store, max_bytes=env.config.max_upload_bytes
    )
    upload, created = await run_in_threadpool(
        lambda: uploads.process_upload(
            env,
            publisher_id=publisher.id,
            scopes=principal.scopes,
            ref=ref,
            filename=filename,
            backport=backport,
            actor=principal.actor,
        )
    )
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"{PREFIX}/uploads/{upload.id}"

    def render() -> UploadOut:
        with session_scope(env.sessions) as session:
            return upload_out(session, uploads.load_upload(session, upload.id))

    return await run_in_threadpool(render)


@router.get("/uploads", summary="Recent uploads (the publisher's own; the admin sees all)")
def list_uploads(
    principal: CurrentPrincipal,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[UploadOut]:
    if not principal.is_admin:
        publisher = principal.require_publisher("list uploads")
        rows = uploads.list_uploads(session, publisher_id=publisher.id, limit=limit)
    else:
        rows = uploads.list_uploads(session, publisher_id=None, limit=limit)
    return [upload_out(session, u) for u in rows]


@router.get("/uploads/{upload_id}", summary="An upload's job: state, checks, history")
def get_upload(upload_id: int, principal: CurrentPrincipal, session: DbSession) -> UploadOut:
    upload = uploads.load_upload(session, upload_id)
    if not principal.can_manage_publisher(upload.publisher):
        raise NotFoundError.one(  # not 403: do not confirm other publishers' uploads
            f"no upload {upload_id}", location="upload_id", hint="check the id"
        )
    return upload_out(session, upload)


# -- review -------------------------------------------------------------------------


@router.get("/reviews", summary="Versions waiting for review (platform admin)")
def list_reviews(principal: CurrentPrincipal, session: DbSession) -> list[ReviewItem]:
    principal.require_admin("review versions")
    rows = (
        session.query(AppVersion)
        .filter(AppVersion.state == VersionState.PENDING_REVIEW)
        .order_by(AppVersion.created_at)
        .all()
    )
    items = []
    for row in rows:
        checks: Sequence[CheckResult] = []
        if row.upload_id is not None:
            upload = session.get(Upload, row.upload_id)
            checks = upload.checks if upload is not None else []
        permission_details = next((c.details for c in checks if c.name == "permissions"), {})
        items.append(
            ReviewItem(
                app_id=row.app.app_id,
                version=row.version,
                publisher=row.app.publisher.name,
                upload_id=row.upload_id,
                created_at=row.created_at,
                reasons=[f"{c.name}: {c.summary}" for c in checks if c.needs_review],
                permissions=permission_details,
            )
        )
    return items


@router.post("/apps/{app_id}/versions/{version}/approve", summary="Publish a pending version")
def approve_version(
    request: Request,
    app_id: AppIdPath,
    version: VersionPath,
    principal: CurrentPrincipal,
    session: DbSession,
    body: ReasonIn | None = None,
) -> VersionOut:
    principal.require_admin("approve versions")
    row = queries.get_version(session, app_id, version)
    lifecycle.approve(
        session,
        row,
        listeners=listeners(request),
        actor=principal.actor,
        reason=body.reason if body else "",
    )
    return VersionOut.of(row)


@router.post("/apps/{app_id}/versions/{version}/reject", summary="Refuse a pending version")
def reject_version(
    request: Request,
    app_id: AppIdPath,
    version: VersionPath,
    body: ReasonIn,
    principal: CurrentPrincipal,
) -> VersionOut:
    principal.require_admin("reject versions")
    env = registry_env(request)
    with session_scope(env.sessions) as session:
        row = queries.get_version(session, app_id, version)
        digest = lifecycle.reject(session, row, actor=principal.actor, reason=body.reason)
        out = VersionOut.of(row)
    with session_scope(env.sessions) as session:
        lifecycle.release_blob(session, env.blob_store, digest)
    return out


@router.post("/apps/{app_id}/versions/{version}/deprecate", summary="Deprecate a version")
def deprecate_version(
    app_id: AppIdPath,
    version: VersionPath,
    body: DeprecateIn,
    principal: CurrentPrincipal,
    session: DbSession,
) -> VersionOut:
    row = _managed_version(session, principal, app_id, version, "deprecate versions of")
    lifecycle.deprecate(
        session, row, actor=principal.actor, message=body.message, replacement=body.replacement
    )
    return VersionOut.of(row)


@router.post("/apps/{app_id}/versions/{version}/yank", summary="Yank a version")
def yank_version(
    app_id: AppIdPath,
    version: VersionPath,
    body: ReasonIn,
    principal: CurrentPrincipal,
    session: DbSession,
) -> VersionOut:
    row = _managed_version(session, principal, app_id, version, "yank versions of")
    lifecycle.yank(session, row, actor=principal.actor, reason=body.reason)
    return VersionOut.of(row)


@router.post("/apps/{app_id}/versions/{version}/unpublish", summary="Unpublish a version")
def unpublish_version(
    request: Request,
    app_id: AppIdPath,
    version: VersionPath,
    principal: CurrentPrincipal,
    body: ReasonIn | None = None,
) -> VersionOut:
    env = registry_env(request)
    with session_scope(env.sessions) as session:
        row = _managed_version(session, principal, app_id, version, "unpublish versions of")
        digest = lifecycle.unpublish(
            session,
            row,
            listeners=env.listeners,
            actor=principal.actor,
            reason=body.reason if body else "",
            window=timedelta(hours=env.config.unpublish_window_h),
        )
        out = VersionOut.of(row)
    if digest is not None:
        with session_scope(env.sessions) as session:
            lifecycle.release_blob(session, env.blob_store, digest)
    return out


# -- marketplace --------------------------------------------------------------------


@router.get("/search", summary="Search apps by text and tags")
def search_apps(
    session: DbSession,
    q: Annotated[str, Query(max_length=200)] = "",
    tag: Annotated[list[str] | None, Query(max_length=10)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SearchOut:
    tags = [t.strip().lower() for t in tag or [] if t.strip()]
    found = backend_for(session).search(session, q, tags, limit)
    return SearchOut(query=q, tags=tags, results=[AppOut.of(a) for a in found])


@router.get("/apps/{app_id}", summary="An app and its versions")
def get_app(app_id: AppIdPath, session: DbSession, principal: OptionalPrincipal) -> AppDetail:
    app = queries.get_app(session, app_id)
    return AppDetail(**AppOut.of(app).model_dump(), versions=_versions(session, principal, app))


def _versions(session: Session, principal: Principal | None, app: RegistryApp) -> list[VersionOut]:
    """The versions the caller may see; an app with none of them is not found (an app
    whose first version waits for review is not public yet)."""
    everything = principal is not None and principal.can_manage_app(app.app_id, app.publisher_id)
    rows = queries.versions_of(session, app, None if everything else INSTALLABLE_STATES)
    if not rows and not everything:
        raise NotFoundError.one(
            f"no app {app.app_id!r} in the registry",
            location="app_id",
            hint="check the id (search with `apprt registry search`)",
        )
    return [VersionOut.of(r) for r in rows]


@router.get("/apps/{app_id}/versions", summary="Versions of an app, newest first")
def list_versions(
    app_id: AppIdPath, session: DbSession, principal: OptionalPrincipal
) -> list[VersionOut]:
    return _versions(session, principal, queries.get_app(session, app_id))


def _serves_assets(request: Request) -> bool:
    """Whether this server runs the web shell (its lifespan sets ``app.state.shell``),
    which serves installed packages' frontend files under ``/assets/sha256/``."""
    return getattr(request.app.state, "shell", None) is not None


@router.get(
    "/apps/{app_id}/versions/{version}",
    summary="One version, with the SRI of each of its frontend assets",
)
def get_version(
    request: Request,
    app_id: AppIdPath,
    version: VersionPath,
    session: DbSession,
    principal: OptionalPrincipal,
) -> VersionDetail:
    row = _visible_version(session, principal, app_id, version)
    found = distribution.frontend_assets(request.app.state.blob_store, row.sha256)
    assets = None
    if found is not None:
        shell = _serves_assets(request)
        assets = [
            FrontendAssetOut(
                path=a.path,
                size=a.size,
                sha256=a.sha256,
                integrity=a.integrity,
                url=f"/assets/sha256/{row.sha256}/{a.path.removeprefix(distribution.FRONTEND_DIR)}"
                if shell
                else None,
            )
            for a in found
        ]
    return VersionDetail(**VersionOut.of(row).model_dump(), frontend_assets=assets)


@router.get("/apps/{app_id}/versions/{version}/history", summary="A version's state changes")
def version_history(
    app_id: AppIdPath, version: VersionPath, session: DbSession, principal: OptionalPrincipal
) -> list[TransitionOut]:
    _visible_version(session, principal, app_id, version)
    return [TransitionOut.of(t) for t in lifecycle.history(session, app_id, version)]


PlatformQuery = Annotated[
    str, Query(max_length=64, description="Platform API version (default: this platform's)")
]


@router.get(
    "/apps/{app_id}/versions/{version}/dependencies",
    summary="Dependency graph of a version, resolved against the registry",
)
def version_dependencies(
    app_id: AppIdPath,
    version: VersionPath,
    session: DbSession,
    platform: PlatformQuery = PLATFORM_API_VERSION,
) -> GraphOut:
    graph = queries.dependency_graph(session, app_id, version, platform)
    return GraphOut(
        root=graph.root,
        platform=platform,
        nodes=graph.nodes,
        edges=graph.edges,
        install_order=graph.install_order,
    )


@router.get(
    "/apps/{app_id}/compatible",
    summary="The newest installable version that runs on a platform API version",
)
def newest_compatible(
    app_id: AppIdPath, session: DbSession, platform: PlatformQuery = PLATFORM_API_VERSION
) -> VersionOut:
    return VersionOut.of(queries.newest_compatible(session, app_id, platform))
