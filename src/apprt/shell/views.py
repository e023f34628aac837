"""The web shell as a platform component: its page, its assets and the loader's API.

Routes (see ``docs/frontend.md`` for the host contract):

=============================================  ==========================================
``GET /``                                      the shell's page (strict CSP, per-response
                                               nonce)
``GET /shell/static/{path}``                   the shell's own ES modules and styles
``GET /shell/frame/{org}/{app}``               the document of an ``iframe`` app (sandbox
                                               CSP, its own import map)
``GET /assets/sha256/{digest}/{path}``         a file of an installed package's
                                               ``frontend/``: immutable, content-addressed
``GET /api/v1/orgs/{org}/importmap``           the page's import map for the organization
``GET /api/v1/orgs/{org}/frontends``           descriptors of the organization's apps
``POST /api/v1/telemetry/frontend``            measurements from browsers
``GET /api/v1/telemetry/frontend/{org}``       the latest per app (for administration)
=============================================  ==========================================
"""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy.orm import Session

from apprt.accounts.orgs import org_for
from apprt.accounts.views import CurrentUser
from apprt.blobs.store import is_digest
from apprt.db.dependencies import DbSession
from apprt.errors import ApprtError, NotFoundError, Problem
from apprt.shell.importmap import FRONTEND_DIR, OrgFrontends, build
from apprt.shell.installed import PackageIndex, installed_apps, tree_of
from apprt.shell.telemetry import FrontendTelemetry, TelemetryIn

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
#: Asset paths: what a package path may be (docs/package-format.md), nothing else.
_ASSET_PATH = re.compile(r"^[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*$")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".html": "text/plain; charset=utf-8",  # never a document of the platform's origin
    ".map": "application/json",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
}
#: Every asset and static response: documents made of them have no origin to abuse.
_ASSET_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"

router = APIRouter(tags=["shell"])


class AssetNotFoundError(ApprtError):
    status_code: ClassVar[int] = 404


@dataclass
class ShellState:
    index: PackageIndex
    telemetry: FrontendTelemetry
    static_etags: dict[str, str] = field(default_factory=dict)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    metrics = getattr(app.state, "metrics", None)
    registry = metrics.registry if metrics is not None else CollectorRegistry()
    app.state.shell = ShellState(
        index=PackageIndex(app.state.blob_store), telemetry=FrontendTelemetry(registry)
    )
    yield


def _state(request: Request) -> ShellState:
    state: ShellState = request.app.state.shell
    return state


def org_frontends(request: Request, session: Session, org: str) -> OrgFrontends:
    """The organization's frontends (the caller checked membership)."""
    apps = installed_apps(request.app.state, session, org, _state(request).index)
    return build(org, apps)


# -- the page ------------------------------------------------------------------------


def _nonce() -> str:
    return secrets.token_urlsafe(18)


def shell_csp(nonce: str) -> str:
    """The shell page's policy: only nonce'd scripts and what they load."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'nonce-{nonce}' 'strict-dynamic'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "frame-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def _security_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


_INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>apprt</title>
<link rel="icon" href="/shell/static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/shell/static/shell.css">
<script src="/shell/static/boot.js" nonce="{nonce}"></script>
</head>
<body>
<div id="shell"><p class="booting" role="status">Loading apprt…</p></div>
<noscript>The apprt shell needs JavaScript.</noscript>
</body>
</html>
"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    nonce = _nonce()
    return HTMLResponse(
        _INDEX.replace("{nonce}", nonce), headers=_security_headers(shell_csp(nonce))
    )


@router.get("/shell/static/{path:path}", include_in_schema=False)
def static(path: str, request: Request) -> Response:
    """The shell's own files: revalidated (ETag) rather than cached forever."""
    if not _ASSET_PATH.match(path) or ".." in path.split("/"):
        raise AssetNotFoundError.single(f"no shell file {path!r}", location="path")
    file = STATIC_DIR / path
    if not file.is_file():
        raise AssetNotFoundError.single(f"no shell file {path!r}", location="path")
    state = _state(request)
    etag = state.static_etags.get(path)
    if etag is None:
        etag = '"' + hashlib.sha256(file.read_bytes()).hexdigest()[:32] + '"'
        state.static_etags[path] = etag
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _ASSET_CSP,
        # Iframe apps' documents have an opaque origin: their module loads are CORS.
        "Access-Control-Allow-Origin": "*",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media = _TYPES.get(file.suffix, mimetypes.guess_type(file.name)[0] or "text/plain")
    return FileResponse(file, media_type=media, headers=headers)


# -- assets: content-addressed files of installed packages ---------------------------


@router.get("/assets/sha256/{digest}/{path:path}", include_in_schema=False)
def asset(
    digest: Annotated[str, PathParam(description="sha256 of the package")],
    path: str,
    request: Request,
) -> Response:
    """A file under ``frontend/`` of an installed package, served from its unpacked
    tree. The URL names the package's bytes, so the answer never changes: cached
    forever. Integrity is the browser's job (the import map lists each module's SRI),
    so a file altered on disk is refused there, not here."""
    missing = AssetNotFoundError.single(
        f"no file {path!r} in the frontend of package {digest[:12]}…",
        location="path",
        hint="asset URLs come from the organization's import map",
    )
    if not is_digest(digest) or not _ASSET_PATH.match(path) or ".." in path.split("/"):
        raise missing
    # Only installed packages (their tree exists) are served; checked before the
    # package is read, so unknown digests cost a stat, not a read of a blob.
    tree = tree_of(request.app.state, digest)
    if tree is None:
        raise missing
    files = _state(request).index.files(digest)
    if files is None or FRONTEND_DIR + path not in files:
        raise missing
    file = tree / "frontend" / path
    if not file.is_file():
        raise missing
    etag = f'"{files[FRONTEND_DIR + path].sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _ASSET_CSP,
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    guessed = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    media = _TYPES.get(file.suffix, guessed)
    return FileResponse(file, media_type=media, headers=headers)


# -- the loader's API ----------------------------------------------------------------


@router.get("/api/v1/orgs/{org}/importmap", summary="The shell's import map for an organization")
def importmap(org: str, request: Request, user: CurrentUser, session: DbSession) -> Response:
    """``imports`` (negotiated shared packages), ``scopes`` (apps on their own copy) and
    ``integrity`` (SRI of every module URL) for the organization's ``shadow`` apps."""
    org_for(session, user, org)
    data = org_frontends(request, session, org).page_map()
    return Response(
        json.dumps(data, indent=None, separators=(",", ":")),
        media_type="application/importmap+json",
        headers={"Cache-Control": "private, no-cache"},
    )


class FrontendsOut(BaseModel):
    org: str
    apps: list[dict[str, Any]]
    importmap: dict[str, Any]


@router.get(
    "/api/v1/orgs/{org}/frontends", summary="The organization's apps as the shell loads them"
)
def frontends(org: str, request: Request, user: CurrentUser, session: DbSession) -> FrontendsOut:
    org_for(session, user, org)
    found = org_frontends(request, session, org)
    return FrontendsOut(org=org, apps=found.descriptors(), importmap=found.page_map())


def frame_csp(nonce: str, origin: str) -> str:
    """An ``iframe`` app's policy: sandboxed (opaque origin), no network of its own."""
    return "; ".join(
        [
            "sandbox allow-scripts allow-forms",
            "default-src 'none'",
            f"script-src 'nonce-{nonce}' {origin}/shell/static/frame.js {origin}/assets/sha256/",
            f"style-src 'unsafe-inline' {origin}/shell/static/ {origin}/assets/sha256/",
            f"img-src data: blob: {origin}/assets/sha256/",
            f"font-src {origin}/assets/sha256/",
            "connect-src 'none'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
            "object-src 'none'",
        ]
    )


_FRAME = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="apprt-app" content="{app}">
<meta name="apprt-entry" content="{entry}">
<title>{title}</title>
<script type="importmap" nonce="{nonce}">{importmap}</script>
<link rel="stylesheet" href="{origin}/shell/static/frame.css">
<script type="module" nonce="{nonce}" src="{origin}/shell/static/frame.js"></script>
</head>
<body><main id="app"></main></body>
</html>
"""


@router.get("/shell/frame/{org}/{app_id}", response_class=HTMLResponse, include_in_schema=False)
def frame(
    org: str, app_id: str, request: Request, user: CurrentUser, session: DbSession
) -> HTMLResponse:
    org_for(session, user, org)
    found = org_frontends(request, session, org)
    front = found.by_id(app_id)
    data = found.frame_map(app_id)
    if front is None or data is None or front.entry_url is None:
        raise NotFoundError(
            [
                Problem(
                    f"no loadable iframe app {app_id!r} in {org!r}",
                    location="app_id",
                    hint="see GET /api/v1/orgs/{org}/frontends",
                )
            ],
            title="not found",
        )
    origin = f"{request.url.scheme}://{request.url.netloc}"
    nonce = _nonce()
    # JSON in a script element: "</" must not end the element early.
    importmap_text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    body = (
        _FRAME.replace("{nonce}", nonce)
        .replace("{origin}", origin)
        .replace("{app}", html.escape(app_id))
        .replace("{entry}", html.escape(origin + front.entry_url))
        .replace("{title}", html.escape(front.app.manifest.name))
        .replace("{importmap}", importmap_text)
    )
    headers = _security_headers(frame_csp(nonce, origin))
    headers.pop("Cross-Origin-Opener-Policy")
    return HTMLResponse(body, headers=headers)


# -- telemetry -----------------------------------------------------------------------


class TelemetryOut(BaseModel):
    accepted: int


@router.post("/api/v1/telemetry/frontend", status_code=202, summary="Report frontend measurements")
def report(
    body: TelemetryIn, request: Request, user: CurrentUser, session: DbSession
) -> TelemetryOut:
    org_for(session, user, body.org)
    state = _state(request)
    apps = installed_apps(request.app.state, session, body.org, state.index)
    installed = {a.app_id for a in apps}
    accepted = state.telemetry.record(body.org, installed, body.events)
    return TelemetryOut(accepted=accepted)


@router.get(
    "/api/v1/telemetry/frontend/{org}", summary="What browsers last reported about each app"
)
def health(
    org: str, request: Request, user: CurrentUser, session: DbSession
) -> dict[str, dict[str, Any]]:
    org_for(session, user, org)
    return _state(request).telemetry.summary(org)
