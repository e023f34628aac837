"""The install engine as a platform component: its routes and its lifespan.

Listed in :data:`apprt.server.COMPONENTS` after the registry, the jobs and the
runtime (the supervisor must be started before a resumed job deploys). At start, in a
worker thread:

* puts an :class:`~apprt.install.config.InstallConfig` on ``app.state.install_config``
  (unless a test put its own there) and the steps' :class:`InstallEnv` on
  ``app.state.install``; the index of active installations on
  ``app.state.installations`` (loaded from the database);
* hands the gateway the settings of each active installation (``x-apprt-config``);
* prunes retained archives past the retention;
* removes unpacked trees, environments and staging directories nothing uses;

then registers the ``install``, ``update`` and ``uninstall`` job kinds, which resumes the jobs a
crash interrupted. On shutdown it waits (a little) for running install jobs, so a
graceful stop does not interrupt them while the runtime they use goes away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from apprt.install import retention
from apprt.install.config import InstallConfig
from apprt.install.services import UPDATE
from apprt.install.steps import INSTALL, INSTALL_KIND, UNINSTALL, UNINSTALL_KIND, InstallEnv
from apprt.install.steps import collect_garbage as _collect_garbage
from apprt.install.update import UPDATE_KIND
from apprt.install.views import router
from apprt.jobs.engine import JobRunner
from apprt.jobs.models import Job, JobState

__all__ = ["lifespan", "router"]

log = structlog.get_logger(__name__)

#: How long shutdown waits for running install, update and uninstall jobs.
SHUTDOWN_WAIT_S = 8.0


def _start(app: FastAPI) -> InstallEnv:
    state = app.state
    if getattr(state, "install_config", None) is None:
        state.install_config = InstallConfig()
    env = InstallEnv.create(state, state.install_config)
    with env.sessions() as session:
        env.index.load(session)
    retention.prune(env.retained, env.config.retention_days)
    removed = _collect_garbage(env)
    if any(removed.values()):
        log.info("install.garbage_collected", **removed)
    state.install = env
    state.installations = env.index
    return env


def _unfinished(env: InstallEnv) -> list[int]:
    with env.sessions() as session:
        return list(
            session.scalars(
                select(Job.id).where(
                    Job.kind.in_((INSTALL, UPDATE, UNINSTALL)),
                    Job.state.in_((JobState.PENDING, JobState.RUNNING, JobState.ROLLING_BACK)),
                )
            )
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    env = await run_in_threadpool(_start, app)
    gateway = getattr(app.state, "gateway", None)
    if gateway is not None and hasattr(gateway, "config_for"):
        gateway.config_for = env.index.config_json  # x-apprt-config: the org's settings
    runner: JobRunner = app.state.jobs
    runner.register(INSTALL_KIND)
    runner.register(UPDATE_KIND)
    runner.register(UNINSTALL_KIND)
    try:
        yield
    finally:
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        for job_id in await run_in_threadpool(_unfinished, env):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.to_thread(runner.wait, job_id, remaining)
