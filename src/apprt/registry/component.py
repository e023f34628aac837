"""The registry as a platform component: its ``router`` and ``lifespan``.

Listed in :data:`apprt.server.COMPONENTS`. At start the lifespan:

* puts a :class:`~apprt.registry.config.RegistryConfig` on
  ``app.state.registry_config`` (unless a test put its own there);
* creates ``app.state.registry_listeners`` (the
  :class:`~apprt.registry.hooks.PublicationListener` list other components, such as
  the TUF repository, append to) if no component created it first;
* creates and rebuilds the full-text search index (:func:`apprt.registry.search.ensure`);
* closes upload jobs a crash left half-done and releases their blobs;
* imports bandit ahead of the first upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from apprt.registry import search
from apprt.registry.checks import security
from apprt.registry.config import RegistryConfig
from apprt.registry.services.uploads import RegistryEnv, close_interrupted
from apprt.registry.views import router

__all__ = ["lifespan", "router"]


def _start(app: FastAPI) -> None:
    state = app.state
    if getattr(state, "registry_config", None) is None:
        state.registry_config = RegistryConfig()
    if getattr(state, "registry_listeners", None) is None:
        state.registry_listeners = []
    search.ensure(state.engine)
    close_interrupted(
        RegistryEnv(
            sessions=state.session_factory,
            blob_store=state.blob_store,
            config=state.registry_config,
            listeners=state.registry_listeners,
        )
    )
    security.preload()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(_start, app)
    yield
