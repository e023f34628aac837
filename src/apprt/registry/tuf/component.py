"""The TUF repository as a platform component: ``/tuf/`` routes and the lifespan.

Listed in :data:`apprt.server.COMPONENTS` after the registry. At start the lifespan
(in a worker thread):

* bootstraps the repository if the database has none (keys under
  ``<data dir>/tuf-keys/``, root v1, targets v1 delegating to the hash bins, empty
  bins, snapshot v1, timestamp v1), else checks the online keys match the metadata;
* re-signs whatever is past half its lifetime (:meth:`TufRepository.refresh`);
* stores the repository on ``app.state.tuf`` and appends it to
  ``app.state.registry_listeners`` (created if absent), so every publish and
  unpublish signs the change in the registry's own transaction;

then refreshes every ``APPRT_TUF_REFRESH_INTERVAL_S`` seconds until shutdown, so
timestamps (1 day by default) never lapse while the server runs.

Routes (consistent snapshots; what a stock ``tuf.ngclient.Updater`` asks for with
``metadata_base_url=<server>/tuf/`` and ``target_base_url=<server>/tuf/targets/``):

``GET /tuf/{N}.root.json``            root version N (``1.root.json`` to bootstrap)
``GET /tuf/timestamp.json``           the newest timestamp (``Cache-Control: no-cache``)
``GET /tuf/{N}.{role}.json``          snapshot, targets and ``bins-*`` versions
``GET /tuf/targets/{app id}/{sha256}.{version}.apppkg``  a package, streamed from the
                                      blob store (only if that path is signed with that
                                      hash)

Versioned files never change, so they are served as immutable.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, ClassVar

import structlog
from fastapi import APIRouter, FastAPI, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from apprt.blobs.store import BlobStore
from apprt.db.engine import session_scope
from apprt.errors import ApprtError, Problem
from apprt.registry.distribution import CACHE_IMMUTABLE, blob_response
from apprt.registry.tuf.config import TufConfig
from apprt.registry.tuf.repository import TufRepository

__all__ = ["TufNotFoundError", "lifespan", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/tuf", tags=["tuf"])

_VERSIONED = re.compile(r"(?P<version>[1-9][0-9]{0,9})\.(?P<role>[a-z][a-z0-9-]{0,63})\.json")
_TARGET = re.compile(r"(?P<dir>.+)/(?P<hash>[0-9a-f]{64})\.(?P<name>[^/]+)")


class TufNotFoundError(ApprtError):
    """No such metadata file or target (HTTP 404)."""

    status_code: ClassVar[int] = 404


def _repository(request: Request) -> TufRepository:
    repository: TufRepository = request.app.state.tuf
    return repository


def _not_found(what: str, hint: str) -> TufNotFoundError:
    return TufNotFoundError(
        [Problem(reason=f"no {what}", location="path", hint=hint)], title="not found"
    )


@router.get(
    "/targets/{path:path}",
    summary="A package, by its consistent-snapshot target name",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
def get_target(
    path: Annotated[str, Path(description="<app id>/<sha256>.<version>.apppkg")],
    request: Request,
) -> Response:
    """Streams the package if ``<app id>/<version>.apppkg`` is a signed target with
    that sha256 (strong ETag, immutable, Range)."""
    match = _TARGET.fullmatch(path)
    if match is None:
        raise _not_found(
            f"target {path[:200]!r}",
            "targets are named <app id>/<sha256>.<version>.apppkg (consistent snapshots)",
        )
    target_path = f"{match['dir']}/{match['name']}"
    repository = _repository(request)
    with session_scope(repository.sessions) as session:
        target = repository.target(session, target_path)
        digest = target.sha256 if target is not None else None
    if digest != match["hash"]:
        raise _not_found(
            f"signed target {target_path[:200]!r} with sha256 {match['hash']}",
            "refresh your TUF metadata; the target may have been unpublished",
        )
    store: BlobStore = request.app.state.blob_store
    return blob_response(request, store, match["hash"])


@router.get(
    "/{name}",
    summary="TUF metadata: N.root.json, timestamp.json, N.snapshot.json, N.targets.json...",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, 404: {}},
)
def get_metadata(
    name: Annotated[str, Path(description="timestamp.json, or <version>.<role>.json")],
    request: Request,
) -> Response:
    repository = _repository(request)
    if name in ("timestamp.json", "root.json"):
        role, version, cache = name.removesuffix(".json"), None, "no-cache"
    else:
        match = _VERSIONED.fullmatch(name)
        if match is None:
            raise _not_found(
                f"metadata file {name[:100]!r}",
                "ask for timestamp.json or <version>.<role>.json, e.g. 1.root.json",
            )
        role, version, cache = match["role"], int(match["version"]), CACHE_IMMUTABLE
    with session_scope(repository.sessions) as session:
        body = repository.metadata_bytes(session, role, version)
    if body is None:
        raise _not_found(f"metadata file {name}", "refresh from timestamp.json")
    return Response(body, media_type="application/json", headers={"Cache-Control": cache})


def _start(app: FastAPI) -> TufRepository:
    state = app.state
    config = getattr(state, "tuf_config", None) or TufConfig()
    repository = TufRepository(state.session_factory, state.settings, config)
    if repository.bootstrap():
        log.info("tuf.repository_created")
    repository.refresh()
    state.tuf = repository
    if getattr(state, "registry_listeners", None) is None:
        state.registry_listeners = []
    state.registry_listeners.append(repository)
    return repository


async def _keep_fresh(repository: TufRepository) -> None:
    interval = repository.config.refresh_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(repository.refresh)
        except Exception as exc:  # a failed refresh must not end the loop
            log.error("tuf.refresh_failed", error=str(exc), exc_info=exc)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    repository = await run_in_threadpool(_start, app)
    task = asyncio.create_task(_keep_fresh(repository), name="tuf-refresh")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listeners = getattr(app.state, "registry_listeners", [])
        if repository in listeners:
            listeners.remove(repository)
