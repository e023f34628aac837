"""Durable jobs: a job, its ordered steps, and the events a client follows.

Everything the engine needs to resume after a crash is in these rows; nothing is
kept only in memory.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from apprt.db.base import Base, string_enum, utcnow


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"  # failed, and every completed step was undone
    FAILED = "failed"  # failed and could not be fully undone (see events)

    @property
    def finished(self) -> bool:
        return self in {JobState.SUCCEEDED, JobState.ROLLED_BACK, JobState.FAILED}


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    COMPENSATED = "compensated"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    #: What the job is about, for listing: e.g. "acme/com.example.crm-connector".
    subject: Mapped[str] = mapped_column(String(255), index=True)
    #: The organization the job acts on (None for platform-wide jobs); who may watch it.
    org_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True, default=None
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[JobState] = mapped_column(string_enum(JobState), default=JobState.PENDING)
    #: User-facing problems when the job failed (``Problem.as_dict()`` list).
    error: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, default=None)
    actor: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Which process runs the job, until when: another replica may take over after.
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)

    steps: Mapped[list[JobStep]] = relationship(
        back_populates="job",
        order_by="JobStep.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class JobStep(Base):
    __tablename__ = "job_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[StepState] = mapped_column(string_enum(StepState), default=StepState.PENDING)
    #: What the step produced, for the steps after it and for compensation.
    output: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    job: Mapped[Job] = relationship(back_populates="steps")


class JobEvent(Base):
    """One line of a job's progress, streamed to clients (SSE) in ``id`` order."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(32))  # step_started, step_done, job_done...
    step: Mapped[str | None] = mapped_column(String(64), default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
