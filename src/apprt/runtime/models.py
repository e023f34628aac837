"""Tables of the runtime: instances, their routes, their history, idle policies.

* :class:`Instance`: one app version running (or ready to run) for one organization, or
  for every organization of a shared-tenancy app (``org`` is NULL). It keeps what the
  supervisor needs to start it again and to re-adopt it after a platform restart: the
  directories, the manifest's resources, and the driver's :class:`TaskHandle` as JSON.
* :class:`Route`: which instance serves ``/apps/{org}/{app_id}``. An isolated app has one
  route to its own instance; a shared-tenancy app has one route per organization, all to
  the same instance.
* :class:`Transition`: every accepted state change, with its time and reason.
* :class:`IdlePolicy`: idle timeouts per app, per organization or both (``""`` = any).
* :class:`LimitEvent`: a limit an instance hit (memory, pids, cpu, storage,
  request_timeout, egress), hits of one kind within a minute counted on one row.

Other packages use :mod:`apprt.runtime.supervisor`, never these tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from apprt.db.base import Base, utcnow
from apprt.runtime.lifecycle import State


def _state_enum() -> Enum:
    # Stored as the string value, no CHECK constraint (like accounts' Role): adding a
    # state later needs no table rebuild on SQLite.
    return Enum(
        State,
        name="runtime_state",
        native_enum=False,
        create_constraint=False,
        length=16,
        validate_strings=True,
        values_callable=lambda states: [s.value for s in states],
    )


class Instance(Base):
    __tablename__ = "runtime_instances"
    __table_args__ = (Index("ix_runtime_instances_app_id_org", "app_id", "org"),)

    #: ``i`` + 12 hex characters: short (it names cgroups and socket directories).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org: Mapped[str | None] = mapped_column(String(64))  # NULL: shared tenancy
    app_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    tenancy: Mapped[str] = mapped_column(String(16))  # "isolated" | "shared"
    entry: Mapped[str] = mapped_column(String(256))
    driver: Mapped[str] = mapped_column(String(32))
    state: Mapped[State] = mapped_column(_state_enum(), default=State.INSTALLED)
    #: The driver's TaskHandle (instance_id, driver, pid, started_at, state) or NULL.
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    code_dir: Mapped[str] = mapped_column(String(1024))
    env_dir: Mapped[str | None] = mapped_column(String(1024))
    data_dir: Mapped[str] = mapped_column(String(1024))
    run_dir: Mapped[str] = mapped_column(String(1024))
    log_dir: Mapped[str] = mapped_column(String(1024))
    #: The manifest's ``[resources]`` (memory, cpu, concurrency, timeout...).
    resources: Mapped[dict[str, Any]] = mapped_column(JSON)
    trusted: Mapped[bool] = mapped_column(default=False)
    #: Permissions granted by the org admin (manifest ∩ consent), sent to the app.
    grants: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Idle timeout set for this instance by the installer; NULL: the policies decide.
    idle_timeout_s: Mapped[float | None] = mapped_column(default=None)
    restart_count: Mapped[int] = mapped_column(default=0)
    #: Crash times (unix seconds) inside the crash loop window, oldest first.
    recent_crashes: Mapped[list[float]] = mapped_column(JSON, default=list)
    last_exit: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: The end of the logs when the instance entered Failed.
    failure_log: Mapped[str | None] = mapped_column(Text, default=None)
    last_request_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        return f"<Instance {self.id} {self.org or '*'}/{self.app_id}@{self.version} {self.state}>"


class Route(Base):
    __tablename__ = "runtime_routes"

    org: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("runtime_instances.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: False while the app is being installed: the gateway answers as if it were not
    #: there until the install's activation opens the route.
    live: Mapped[bool] = mapped_column(default=True, server_default=true())


class Transition(Base):
    __tablename__ = "runtime_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("runtime_instances.id", ondelete="CASCADE"), index=True
    )
    #: NULL for the row that records the instance's creation (deployed as Installed).
    from_state: Mapped[State | None] = mapped_column(_state_enum())
    to_state: Mapped[State] = mapped_column(_state_enum())
    reason: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdlePolicy(Base):
    """Idle timeout for an app (``org=""``), an org (``app_id=""``) or one app in one org."""

    __tablename__ = "runtime_idle_policies"
    __table_args__ = (UniqueConstraint("org", "app_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org: Mapped[str] = mapped_column(String(64), default="")
    app_id: Mapped[str] = mapped_column(String(128), default="")
    #: Seconds without a request before suspending; 0: never suspend.
    idle_timeout_s: Mapped[float] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LimitEvent(Base):
    """Hits of one limit by one instance (``count`` of them, from ``first_at`` to ``last_at``).

    ``org``: the organization whose request hit it (gateway timeouts, egress of an
    isolated app), NULL for a shared instance's sandbox limits.
    """

    __tablename__ = "runtime_limit_events"
    __table_args__ = (Index("ix_runtime_limit_events_instance_id_id", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("runtime_instances.id", ondelete="CASCADE"))
    org: Mapped[str | None] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(default=1)
    detail: Mapped[str] = mapped_column(String(500))
    first_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)
