"""Installations: which app version each organization has, with its settings and grants.

One :class:`Installation` per (organization, app id), ``UNIQUE(org_id, app_id)``: that
constraint is also what stops two concurrent jobs from installing the same app into
the same organization. A row exists from the install job's resource allocation step
on (state ``installing``) and is deleted when the job rolls back or the app is
uninstalled, so the rows of an organization are exactly what it has (or is getting).

States::

    installing ──> active ──> uninstalling ──> (row deleted)
         │           ^              │
         └─> (row deleted: rolled back)   └─> active (uninstall rolled back)
    failed: a job could not undo its work; an operator must look (see the job's events)

The row also records the resources it was allocated (memory, storage), which the
quota check sums over an organization, and where its bits live (package digest, the
environment key), which tells when a shared unpacked tree or environment is unused.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from apprt.db.base import Base, string_enum, utcnow


class InstallState(StrEnum):
    INSTALLING = "installing"
    ACTIVE = "active"
    FAILED = "failed"
    UNINSTALLING = "uninstalling"


class Installation(Base):
    __tablename__ = "installations"
    __table_args__ = (UniqueConstraint("org_id", "app_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    app_id: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    #: sha256 of the .apppkg: names its blob and its unpacked tree.
    package_sha256: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[InstallState] = mapped_column(
        string_enum(InstallState, 16),
        default=InstallState.INSTALLING,
    )
    #: Asked for by the organization (False: installed as another app's dependency).
    requested: Mapped[bool] = mapped_column(default=True)
    tenancy: Mapped[str] = mapped_column(String(16), default="isolated")
    has_backend: Mapped[bool] = mapped_column(default=True)
    #: The organization's settings for the app, validated, defaults applied.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The installed version's dependencies (app id -> range): who needs whom.
    dependencies: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: Permissions an org admin consented to (exactly the manifest's, normalized).
    grants: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Resources allocated against the organization's quotas.
    memory_mb: Mapped[int] = mapped_column(default=0)
    storage_mb: Mapped[int] = mapped_column(default=0)
    #: The per-version Python environment (None: no requirements, or no backend).
    env_key: Mapped[str | None] = mapped_column(String(64), default=None)
    installed_by: Mapped[str] = mapped_column(String(64), default="")
    #: The job that created the row, or the one changing it now (uninstall).
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True, default=None
    )
    #: Where users reach it: ``/apps/{org}/{app id}/``.
    url: Mapped[str] = mapped_column(String(300), default="")
    #: The retained archive whose data this installation started with, if any.
    restored_from: Mapped[str | None] = mapped_column(String(1024), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        return f"<Installation {self.org_id}/{self.app_id}@{self.version} {self.state.value}>"
