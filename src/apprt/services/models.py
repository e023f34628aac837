"""Tables of the platform services: app state per organization, its usage, the audit log.

* :class:`StateEntry`: one key of one app's state in one organization. ``value`` is the
  compact JSON text; ``size`` (key + value bytes in UTF-8) is what counts toward the
  quota; ``version`` is the app+org's write sequence number when it was last written.
* :class:`StateUsage`: one row per app and organization with state: bytes and keys in
  use, and ``seq``, the last version handed out. Every write updates this row first,
  which serializes writers of one app+org (SQLite: the write lock; PostgreSQL: the
  row lock), so quota checks and compare-and-set read what they change.
* :class:`AuditEvent`: every platform API call (and admin backup/restore): when, org,
  app, caller instance, user, operation, permission used, outcome.

Other packages use :mod:`apprt.services.state` and :mod:`apprt.services.audit`, never
these tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from apprt.db.base import Base, utcnow

#: Keys compare byte-wise (code point order) on every backend, so that a prefix is a
#: range: SQLite's default collation is binary; PostgreSQL needs "C".
_KEY = String(256).with_variant(String(256, collation="C"), "postgresql")


class StateEntry(Base):
    __tablename__ = "state_entries"

    org: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(_KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column()
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StateUsage(Base):
    __tablename__ = "state_usage"

    org: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    keys: Mapped[int] = mapped_column(default=0)
    #: The last version handed out (versions never repeat for an app+org).
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "services_audit"
    __table_args__ = (Index("ix_services_audit_org_id", "org", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: The organization the call acted for (or claimed to, when refused); "" if unknown.
    org: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(128))
    #: The calling instance; "" for an admin's action through the API.
    instance_id: Mapped[str] = mapped_column(String(32))
    #: The user the call was made for (forwarded identity, or the admin); "" if none.
    user: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(64))
    #: The permission the call needed ("" when none, e.g. whoami).
    permission: Mapped[str] = mapped_column(String(200))
    #: ok, denied, identity_rejected, rate_limited, quota_exceeded, conflict, invalid, error
    outcome: Mapped[str] = mapped_column(String(32))
    #: What it was about: the key or prefix, the backup's name.
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(String(500))
