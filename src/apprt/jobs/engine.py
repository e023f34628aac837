"""The durable job engine: ordered steps, persisted, idempotent, compensable.

A *job kind* is an ordered list of :class:`Step` s, each with ``run`` (does the
work, returns a JSON-able output) and ``compensate`` (undoes it). The engine
records every transition in the database before and after each step, so a crash
at any point leaves enough to go on:

* a step that was running when the process died is run again on resume, so
  ``run`` must be idempotent (check what already exists, then do the rest);
* when a step fails, every step that ran (the failed one included, which may have
  done part of its work) is compensated in reverse order, so ``compensate`` must
  tolerate work that was never done;
* a job that was rolling back when the process died goes on rolling back.

Jobs are claimed with a lease (owner + expiry) so that several platform replicas
never run the same job; the owner names host and pid, so after a crash the next
process on the same host takes its predecessor's jobs over at once.

Example::

    >>> from apprt.jobs.engine import JobKind, Step
    >>> def hello(ctx): return {"greeting": f"hello {ctx.params['name']}"}
    >>> kind = JobKind("demo", [Step("hello", "Say hello", hello)])
    >>> [s.name for s in kind.steps]
    ['hello']

and then ``runner.register(kind)``, ``job_id = runner.submit("demo", {"name": "ada"},
subject="demo")``, ``runner.wait(job_id)``.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.base import utcnow
from apprt.db.engine import session_scope
from apprt.errors import ApprtError, Problem
from apprt.jobs import failpoints
from apprt.jobs.models import Job, JobEvent, JobState, JobStep, StepState

log = structlog.get_logger(__name__)


@dataclass
class StepContext:
    """What a step sees: the job's parameters, earlier outputs, and shared services."""

    job_id: int
    params: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    services: Any
    _emit: Callable[[str, dict[str, Any]], None]

    def progress(self, message: str, **data: Any) -> None:
        """Tell whoever follows the job what is happening now."""
        self._emit(message, data)


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: Callable[[StepContext], dict[str, Any] | None]
    compensate: Callable[[StepContext], None] | None = None


@dataclass(frozen=True)
class JobKind:
    name: str
    steps: list[Step]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


@dataclass
class _Worker:
    thread: threading.Thread
    done: threading.Event = field(default_factory=threading.Event)


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _owner_is_dead_here(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobRunner:
    """Runs jobs in worker threads, one thread per job; steps are blocking code."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        services: Any = None,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self.sessions = sessions
        self.services = services
        self.lease = lease
        self.owner = _owner_id()
        self.kinds: dict[str, JobKind] = {}
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- public API ------------------------------------------------------------------

    def register(self, kind: JobKind) -> list[int]:
        """Make ``kind`` runnable and resume its unfinished jobs (after a crash)."""
        self.kinds[kind.name] = kind
        return self.resume_unfinished(kind.name)

    def create(
        self,
        session: Session,
        kind: str,
        params: dict[str, Any],
        *,
        subject: str,
        actor: str = "",
        org_id: int | None = None,
    ) -> Job:
        """Add a pending job in the caller's transaction; :meth:`start` it after commit."""
        job_kind = self.kinds[kind]
        job = Job(kind=kind, subject=subject, params=params, actor=actor, org_id=org_id)
        job.steps = [
            JobStep(position=i, name=s.name, title=s.title) for i, s in enumerate(job_kind.steps)
        ]
        session.add(job)
        session.flush()
        session.add(JobEvent(job_id=job.id, type="job_created", message=f"{kind} {subject}"))
        return job

    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        subject: str,
        actor: str = "",
        org_id: int | None = None,
    ) -> int:
        """Create and start a job; returns its id at once."""
        with session_scope(self.sessions) as session:
            job = self.create(session, kind, params, subject=subject, actor=actor, org_id=org_id)
            job_id = job.id
        self.start(job_id)
        return job_id

    def start(self, job_id: int) -> None:
        """Run ``job_id`` in a worker thread (no-op if one already runs it)."""
        with self._lock:
            if self._closed or job_id in self._workers:
                return
            worker = _Worker(threading.Thread(target=self._work, args=(job_id,), daemon=True))
            self._workers[job_id] = worker
        worker.thread.start()

    def wait(self, job_id: int, timeout: float | None = None) -> JobState:
        """Block until the job has finished here (or ``timeout``); return its state."""
        worker = self._workers.get(job_id)
        if worker is not None:
            worker.done.wait(timeout)
        with self.sessions() as session:
            return session.get_one(Job, job_id).state

    def resume_unfinished(self, kind: str | None = None) -> list[int]:
        """Start every unfinished job (of ``kind``) that no live process holds."""
        now = utcnow()
        with self.sessions() as session:
            query = select(Job).where(Job.state.in_(_UNFINISHED))
            if kind is not None:
                query = query.where(Job.kind == kind)
            jobs = list(session.scalars(query))
            resumable = [
                job.id
                for job in jobs
                if job.lease_owner is None
                or job.lease_expires_at is None
                or job.lease_expires_at <= now
                or _owner_is_dead_here(job.lease_owner)
            ]
        for job_id in resumable:
            log.info("jobs.resume", job_id=job_id)
            self.start(job_id)
        return resumable

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs and wait a little for running ones (they resume next start)."""
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
        for worker in workers:
            worker.thread.join(timeout)

    # -- the algorithm ---------------------------------------------------------------

    def _work(self, job_id: int) -> None:
        try:
            self.run_job(job_id)
        except Exception:
            log.exception("jobs.engine_error", job_id=job_id)
        finally:
            worker = self._workers.pop(job_id, None)
            if worker is not None:
                worker.done.set()

    def _claim(self, session: Session, job: Job) -> bool:
        now = utcnow()
        if job.lease_owner not in (None, self.owner):
            expired = job.lease_expires_at is None or job.lease_expires_at <= now
            if not expired and not _owner_is_dead_here(job.lease_owner):
                return False
        # Compare-and-set on the owner we saw, so two replicas cannot both win.
        result = session.execute(
            update(Job)
            .where(
                Job.id == job.id,
                or_(Job.lease_owner.is_(None), Job.lease_owner == job.lease_owner),
            )
            .values(lease_owner=self.owner, lease_expires_at=now + self.lease)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return bool(getattr(result, "rowcount", 0) == 1)

    def run_job(self, job_id: int) -> JobState:
        """Run or resume ``job_id`` to the end in this thread; return the final state."""
        with self.sessions() as session:
            job = session.get_one(Job, job_id)
            if job.state.finished:
                return job.state
            if not self._claim(session, job):
                return job.state
            session.refresh(job)
            kind = self.kinds[job.kind]
            if job.state in (JobState.PENDING, JobState.RUNNING):
                self._forward(session, job, kind)
            if job.state is JobState.ROLLING_BACK:
                self._backward(session, job, kind)
            job.lease_owner = None
            job.lease_expires_at = None
            session.commit()
            return job.state

    def _context(self, session: Session, job: Job) -> StepContext:
        outputs = {s.name: dict(s.output or {}) for s in job.steps if s.state is StepState.DONE}

        def emit(message: str, data: dict[str, Any]) -> None:
            # Progress goes out on its own short transaction so followers see it now.
            with session_scope(self.sessions) as events:
                events.add(JobEvent(job_id=job.id, type="progress", message=message, data=data))

        return StepContext(job.id, dict(job.params), outputs, self.services, emit)

    def _event(
        self, session: Session, job: Job, type_: str, step: str | None, message: str, **data: Any
    ) -> None:
        session.add(JobEvent(job_id=job.id, type=type_, step=step, message=message, data=data))

    def _forward(self, session: Session, job: Job, kind: JobKind) -> None:
        if job.state is JobState.PENDING:
            job.state = JobState.RUNNING
            self._event(session, job, "job_started", None, f"{job.kind} {job.subject}")
            session.commit()
        for row in job.steps:
            if row.state is StepState.DONE:
                continue
            step = kind.step(row.name)
            row.state = StepState.RUNNING
            row.attempts += 1
            row.started_at = utcnow()
            job.lease_expires_at = utcnow() + self.lease
            resumed = " (resumed after an interruption)" if row.attempts > 1 else ""
            self._event(session, job, "step_started", row.name, f"{row.title}{resumed}")
            session.commit()
            try:
                failpoints.hit(f"{job.kind}.{row.name}.before")
                output = step.run(self._context(session, job)) or {}
                failpoints.hit(f"{job.kind}.{row.name}.after")
            except Exception as exc:
                problems = _problems(exc, row.title)
                row.state = StepState.FAILED
                row.finished_at = utcnow()
                job.state = JobState.ROLLING_BACK
                job.error = [p.as_dict() for p in problems]
                self._event(
                    session,
                    job,
                    "step_failed",
                    row.name,
                    "; ".join(p.reason for p in problems),
                    problems=job.error,
                )
                session.commit()
                return
            row.state = StepState.DONE
            row.output = output
            row.finished_at = utcnow()
            self._event(session, job, "step_done", row.name, row.title, output=output)
            session.commit()
        job.state = JobState.SUCCEEDED
        self._event(session, job, "job_succeeded", None, f"{job.kind} {job.subject} done")
        session.commit()

    def _backward(self, session: Session, job: Job, kind: JobKind) -> None:
        undo = [s for s in reversed(job.steps) if s.state in _TOUCHED]
        for row in undo:
            step = kind.step(row.name)
            self._event(session, job, "step_compensating", row.name, f"undoing: {row.title}")
            session.commit()
            try:
                failpoints.hit(f"{job.kind}.{row.name}.compensate")
                if step.compensate is not None:
                    step.compensate(self._context(session, job))
            except Exception as exc:
                log.exception("jobs.compensation_failed", job_id=job.id, step=row.name)
                job.state = JobState.FAILED
                self._event(
                    session,
                    job,
                    "job_failed",
                    row.name,
                    f"could not undo {row.title}: {exc}; an operator must clean up",
                )
                session.commit()
                return
            row.state = StepState.COMPENSATED
            self._event(session, job, "step_compensated", row.name, f"undone: {row.title}")
            session.commit()
        job.state = JobState.ROLLED_BACK
        self._event(session, job, "job_rolled_back", None, "rolled back; nothing was changed")
        session.commit()


_UNFINISHED = (JobState.PENDING, JobState.RUNNING, JobState.ROLLING_BACK)
_TOUCHED = (StepState.DONE, StepState.FAILED, StepState.RUNNING)


def _problems(exc: Exception, title: str) -> list[Problem]:
    if isinstance(exc, ApprtError):
        return exc.problems or [Problem(str(exc))]
    error_id = secrets.token_hex(6)
    log.error("jobs.step_error", step=title, error_id=error_id, exc_info=exc)
    return [
        Problem(
            f"{title} failed unexpectedly ({type(exc).__name__}: {exc})",
            location=title,
            hint=f"the server log has the details under error id {error_id}",
        )
    ]
