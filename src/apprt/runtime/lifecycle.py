"""The lifecycle of an app instance: the blueprint's states and the moves between them.

::

    Installed ──> Loading ──> Running ──> Suspended ──> Loading (wake)
                     │           │  ╲──> Updating ──> Loading / Running
                     v           v
                   Failed <── (crash loop)        any ──> Uninstalling

=============  ==========================================================================
Installed      placed on the node (code, environment, data directory), never started
Loading        its sandbox is starting (first access, activation, wake, restart)
Running        serving requests through the gateway
Suspended      hibernated: no process, data kept; the next request wakes it
Updating       a new version is being put in place (the old one keeps serving)
Failed         initialization failed or it crashed in a loop; last logs kept
Uninstalling   being removed (terminal: the row and its history stay for the record)
=============  ==========================================================================

:data:`TRANSITIONS` is the whole table; anything not in it is refused with
:class:`IllegalTransitionError`. Two moves go beyond the blueprint's list, both to keep
the state honest rather than to add states: ``Running → Loading`` is a restart after a
crash (with backoff; the crash loop rule ends it in Failed), and ``Updating`` returns
to where it came from (Installed, Suspended) when a version is swapped on an instance
that is not running.

:func:`record_transition` is the only way a persisted instance changes state: it checks
the move, updates the row (only if it still is in the state the move starts from) and
appends a :class:`~apprt.runtime.models.Transition` (time, from, to, reason) in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import insert, update

from apprt.db.base import utcnow
from apprt.errors import ApprtError, Problem

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class State(StrEnum):
    INSTALLED = "installed"
    LOADING = "loading"
    RUNNING = "running"
    SUSPENDED = "suspended"
    UPDATING = "updating"
    UNINSTALLING = "uninstalling"
    FAILED = "failed"


S = State

#: Every allowed move. A state missing from a set cannot be reached from that state.
TRANSITIONS: Mapping[State, frozenset[State]] = {
    # first access or scheduled activation; an update before the first start
    S.INSTALLED: frozenset({S.LOADING, S.UPDATING, S.UNINSTALLING}),
    # initialization succeeded, or failed (for good: a crash loop, or init failure)
    S.LOADING: frozenset({S.RUNNING, S.FAILED, S.UNINSTALLING}),
    # idle or maintenance; new version; crash -> restart; crash loop
    S.RUNNING: frozenset({S.SUSPENDED, S.UPDATING, S.LOADING, S.FAILED, S.UNINSTALLING}),
    # wake; a new version is put in place while asleep
    S.SUSPENDED: frozenset({S.LOADING, S.UPDATING, S.UNINSTALLING}),
    # the new version starts (Loading) or already serves (Running); or back where it was
    S.UPDATING: frozenset(
        {S.LOADING, S.RUNNING, S.INSTALLED, S.SUSPENDED, S.FAILED, S.UNINSTALLING}
    ),
    # manual restart; a fixed version deployed
    S.FAILED: frozenset({S.LOADING, S.UPDATING, S.UNINSTALLING}),
    S.UNINSTALLING: frozenset(),
}

#: States in which the instance has (or is getting) a live sandbox.
LIVE_STATES: frozenset[State] = frozenset({S.LOADING, S.RUNNING, S.UPDATING})


class IllegalTransitionError(ApprtError):
    """A state change the lifecycle does not allow (HTTP 409)."""

    status_code: ClassVar[int] = 409

    def __init__(self, instance_id: str, source: State, target: State) -> None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[source])) or "none"
        super().__init__(
            [
                Problem(
                    reason=f"instance {instance_id} is {source.value} and cannot become "
                    f"{target.value}",
                    location="state",
                    hint=f"from {source.value} it can become: {allowed}",
                )
            ],
            title="illegal lifecycle transition",
        )
        self.source, self.target = source, target


def can_transition(source: State, target: State) -> bool:
    return target in TRANSITIONS[source]


def check_transition(instance_id: str, source: State, target: State) -> None:
    """Raise :class:`IllegalTransitionError` unless ``source → target`` is allowed."""
    if not can_transition(source, target):
        raise IllegalTransitionError(instance_id, source, target)


class StaleStateError(ApprtError):
    """The database does not hold the state the transition starts from (HTTP 409)."""

    status_code: ClassVar[int] = 409


def record_transition(
    session: Session,
    instance_id: str,
    source: State,
    target: State,
    reason: str,
    *,
    at: datetime | None = None,
    **fields: Any,
) -> None:
    """Move instance ``instance_id`` from ``source`` to ``target``, with its history row.

    Checks the move against :data:`TRANSITIONS`, then updates the row only if it still
    is in ``source`` (so two writers cannot both move it) together with ``fields``
    (other columns to set), and appends the :class:`~apprt.runtime.models.Transition`.
    Two statements in the caller's transaction, no ORM load: this is on the path of
    every wake.
    """
    from apprt.runtime.models import Instance, Transition

    if not reason:
        raise ValueError("a transition needs a reason")
    check_transition(instance_id, source, target)
    when = at or utcnow()
    result = session.execute(
        update(Instance)
        .where(Instance.id == instance_id, Instance.state == source)
        .values(state=target, updated_at=when, **fields)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        raise StaleStateError.single(
            f"instance {instance_id} is not {source.value} in the database",
            location="state",
            hint="another process changed it; reload and retry",
        )
    session.execute(
        insert(Transition).values(
            instance_id=instance_id,
            from_state=source,
            to_state=target,
            reason=reason[:500],
            at=when,
        )
    )
