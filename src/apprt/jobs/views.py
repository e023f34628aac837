"""Following a job: its state and steps, and its events as Server-Sent Events.

``GET /api/v1/jobs/{id}/events`` streams ``text/event-stream``: one SSE event per
:class:`~apprt.jobs.models.JobEvent` (``id`` = event id, ``event`` = its type,
``data`` = JSON), from ``Last-Event-ID`` (or ``?after=``) on, and ends after the job
has finished. Clients that reconnect lose nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from apprt.accounts.models import Membership, Role, User
from apprt.accounts.views import CurrentUser
from apprt.db.dependencies import DbSession
from apprt.errors import NotFoundError, Problem
from apprt.jobs.engine import JobRunner
from apprt.jobs.models import Job, JobEvent, JobState, StepState

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

#: How often the event stream looks for new events.
POLL_INTERVAL_S = 0.1


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    name: str
    title: str
    state: StepState
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    output: dict[str, Any]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    subject: str
    state: JobState
    actor: str
    error: list[dict[str, str]] | None
    created_at: datetime
    updated_at: datetime
    steps: list[StepOut]


def visible_job(session: Session, user: User, job_id: int) -> Job:
    """The job if ``user`` may see it: platform admin, its actor, or a member of its org."""
    job = session.get(Job, job_id)
    allowed = job is not None and (
        user.role is Role.PLATFORM_ADMIN
        or job.actor == user.name
        or (
            job.org_id is not None
            and session.scalars(
                select(Membership).where(
                    Membership.org_id == job.org_id, Membership.user_id == user.id
                )
            ).first()
            is not None
        )
    )
    if job is None or not allowed:
        raise NotFoundError(
            [Problem(f"no job {job_id} that you can see", location="job")], title="not found"
        )
    return job


@router.get("/{job_id}", summary="A job, its state and its steps")
def get_job(job_id: int, user: CurrentUser, session: DbSession) -> JobOut:
    return JobOut.model_validate(visible_job(session, user, job_id))


def _sse(event: JobEvent) -> str:
    data = {
        "id": event.id,
        "type": event.type,
        "step": event.step,
        "message": event.message,
        "data": event.data,
        "at": event.at.isoformat(),
    }
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(data)}\n\n"


def _read_events(
    sessions: sessionmaker[Session], job_id: int, after: int
) -> tuple[list[tuple[int, str]], bool]:
    with sessions() as session:
        rows = list(
            session.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.id > after)
                .order_by(JobEvent.id)
            )
        )
        finished = session.get_one(Job, job_id).state.finished
        return [(r.id, _sse(r)) for r in rows], finished and not rows


@router.get("/{job_id}/events", summary="The job's events as text/event-stream (SSE)")
def job_events(
    job_id: int,
    request: Request,
    user: CurrentUser,
    session: DbSession,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[int | None, Header()] = None,
) -> StreamingResponse:
    visible_job(session, user, job_id)
    sessions: sessionmaker[Session] = request.app.state.session_factory
    start = last_event_id if last_event_id is not None else after

    async def stream() -> AsyncIterator[str]:
        cursor = start
        while True:
            chunks, done = await asyncio.to_thread(_read_events, sessions, job_id, cursor)
            for cursor, chunk in chunks:  # noqa: B007 - the cursor outlives the loop
                yield chunk
            if done:
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_INTERVAL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The job runner lives on ``app.state.jobs``; domains register their kinds on it."""
    runner = JobRunner(app.state.session_factory, services=app.state)
    app.state.jobs = runner
    try:
        yield
    finally:
        await asyncio.to_thread(runner.close)
