"""The audit log of the platform API: every call an app makes, and admins' state actions.

One row per call: time, organization (the one the call acted for, or claimed to when
refused), app, caller instance, user (from the forwarded identity, or the admin),
operation (``state.put``), permission used, outcome (``ok``, ``denied``,
``identity_rejected``, ``rate_limited``, ``quota_exceeded``, ``conflict``, ``invalid``,
``error``), target (key, prefix, backup) and a short detail. A successful call's row is
written in the call's own transaction (no row without the effect, no effect without
the row); a refused call's row in a transaction of its own.

Org admins read their organization's rows with ``GET /api/v1/orgs/{org}/audit``. Rows
older than ``audit_retention_days`` are pruned.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from apprt.db.base import utcnow
from apprt.services.models import AuditEvent

OUTCOMES = (
    "ok",
    "denied",
    "identity_rejected",
    "rate_limited",
    "quota_exceeded",
    "conflict",
    "invalid",
    "error",
)


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    org: str
    app_id: str
    instance_id: str
    user: str
    operation: str
    permission: str
    outcome: str
    target: str
    detail: str


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    #: Pass as ``before`` for older events; null when there are none.
    next: int | None


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def record(
    session: Session,
    *,
    org: str,
    app_id: str,
    operation: str,
    outcome: str,
    instance_id: str = "",
    user: str = "",
    permission: str = "",
    target: str = "",
    detail: str = "",
) -> None:
    """Add one audit row to ``session``'s transaction (committed with it).

    A plain INSERT, not an ORM object: this runs for every platform call."""
    session.execute(
        insert(AuditEvent).values(
            at=utcnow(),
            org=_clip(org, 64),
            app_id=_clip(app_id, 128),
            instance_id=_clip(instance_id, 32),
            user=_clip(user, 64),
            operation=_clip(operation, 64),
            permission=_clip(permission, 200),
            outcome=outcome,
            target=_clip(target, 300),
            detail=_clip(detail, 500),
        )
    )


def events(
    session: Session,
    org: str,
    *,
    app_id: str | None = None,
    outcome: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> AuditPage:
    """The organization's audit rows, newest first (``before``: an id, for older ones)."""
    query = select(AuditEvent).where(AuditEvent.org == org)
    if app_id:
        query = query.where(AuditEvent.app_id == app_id)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return AuditPage(
        events=[AuditEventOut.model_validate(r, from_attributes=True) for r in page],
        next=page[-1].id if len(rows) > limit else None,
    )


def prune(session: Session, *, older_than_days: float) -> int:
    """Delete rows older than ``older_than_days``; how many."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    oldest = session.scalar(select(AuditEvent.id).where(AuditEvent.at < cutoff).limit(1))
    if oldest is None:
        return 0  # nothing to do: do not even take the write lock
    result = session.execute(
        delete(AuditEvent)
        .where(AuditEvent.at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
