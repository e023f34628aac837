"""The registry's tables.

Who publishes
    :class:`Publisher` (an account such as ``example``, the manifest's ``publisher``),
    its Ed25519 :class:`PublisherKey` rows (several, revocable) and its
    :class:`PublisherToken` rows (API tokens scoped to app-id globs, stored as their
    SHA-256 like accounts' tokens).

What is published
    :class:`RegistryApp` (one per app id, owned by the publisher that first uploaded
    it; carries the marketplace listing of its newest version) and :class:`AppVersion`
    (one per ``id@version``; ``UNIQUE(app, version)`` is what makes two concurrent
    uploads of the same version end with exactly one winner).

How it got there
    :class:`Upload` (the validation job of one upload), its :class:`CheckResult` rows
    (one per check: pass, warn, fail or skipped, with problems) and
    :class:`Transition` (every state change of an upload or a version: actor, time,
    reason). Transitions name the app and version as strings, so the history of a
    version outlives its row's changes.

States (:class:`VersionState`)::

    uploaded -> validating -> rejected
                           -> pending_review -> rejected
                           -> published -> deprecated -> yanked
                                        -> yanked
    published | deprecated | yanked | pending_review -> unpublished  (within the window)

``uploaded`` and ``validating`` only ever appear on an upload; a version row is
created once the checks passed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from apprt.db.base import Base, string_enum, utcnow


class VersionState(StrEnum):
    UPLOADED = "uploaded"
    VALIDATING = "validating"
    REJECTED = "rejected"
    PENDING_REVIEW = "pending_review"
    PUBLISHED = "published"
    DEPRECATED = "deprecated"
    YANKED = "yanked"
    UNPUBLISHED = "unpublished"


#: States in which a version can be installed (yanked ones only when pinned exactly).
INSTALLABLE_STATES = (VersionState.PUBLISHED, VersionState.DEPRECATED, VersionState.YANKED)


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 (a status, not a password)
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


class Publisher(Base):
    __tablename__ = "registry_publishers"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The manifest's ``publisher`` field: lowercase letters, digits and ``-``.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")

    keys: Mapped[list[PublisherKey]] = relationship(
        back_populates="publisher", cascade="all, delete-orphan", passive_deletes=True
    )
    tokens: Mapped[list[PublisherToken]] = relationship(
        back_populates="publisher", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Publisher {self.id} {self.name!r}>"


class PublisherKey(Base):
    __tablename__ = "registry_publisher_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("registry_publishers.id", ondelete="CASCADE"), index=True
    )
    #: sha256 hex of the raw public key, as packages' SIGNATURE names signers.
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str] = mapped_column(String(500), default="")

    publisher: Mapped[Publisher] = relationship(back_populates="keys")

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class PublisherToken(Base):
    __tablename__ = "registry_publisher_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("registry_publishers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    #: Hex SHA-256 of the whole token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: App-id globs (``com.example.*``) this token may upload and manage.
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    publisher: Mapped[Publisher] = relationship(back_populates="tokens")


class RegistryApp(Base):
    """One app id; the listing fields mirror its newest installable version."""

    __tablename__ = "registry_apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[str] = mapped_column(String(128), unique=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("registry_publishers.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The newest installable, non-yanked version ("" while there is none).
    latest_version: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    publisher: Mapped[Publisher] = relationship()
    versions: Mapped[list[AppVersion]] = relationship(back_populates="app")


class AppVersion(Base):
    __tablename__ = "registry_versions"
    __table_args__ = (UniqueConstraint("app_pk", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("registry_apps.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    state: Mapped[VersionState] = mapped_column(string_enum(VersionState), index=True)
    #: sha256 hex of the .apppkg (its blob digest) and its size in bytes.
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    manifest_text: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(String(256))
    dependencies: Mapped[dict[str, str]] = mapped_column(JSON)
    permissions: Mapped[list[str]] = mapped_column(JSON)
    backport: Mapped[bool] = mapped_column(default=False)
    #: The upload that created the version (no foreign key: uploads point at versions).
    upload_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    deprecation_message: Mapped[str] = mapped_column(String(1000), default="")
    replacement: Mapped[str] = mapped_column(String(200), default="")
    yank_reason: Mapped[str] = mapped_column(String(1000), default="")
    yanked_at: Mapped[datetime | None] = mapped_column(default=None)

    app: Mapped[RegistryApp] = relationship(back_populates="versions")

    @property
    def app_id(self) -> str:
        return self.app.app_id


class Upload(Base):
    """The validation job of one uploaded package."""

    __tablename__ = "registry_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("registry_publishers.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[VersionState] = mapped_column(string_enum(VersionState), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    filename: Mapped[str] = mapped_column(String(255), default="")
    backport: Mapped[bool] = mapped_column(default=False)
    #: Known once the manifest was read.
    app_id: Mapped[str | None] = mapped_column(String(128), default=None)
    version: Mapped[str | None] = mapped_column(String(64), default=None)
    #: Identical bytes to an existing version: nothing new was created.
    idempotent: Mapped[bool] = mapped_column(default=False)
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("registry_versions.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    publisher: Mapped[Publisher] = relationship()
    checks: Mapped[list[CheckResult]] = relationship(
        back_populates="upload",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CheckResult.position",
    )


class CheckResult(Base):
    __tablename__ = "registry_check_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[int] = mapped_column(
        ForeignKey("registry_uploads.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[CheckStatus] = mapped_column(string_enum(CheckStatus, 16))
    #: Whether this result sends the version to manual review (new permissions...).
    needs_review: Mapped[bool] = mapped_column(default=False)
    summary: Mapped[str] = mapped_column(String(500), default="")
    problems: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    duration_ms: Mapped[float] = mapped_column(default=0.0)

    upload: Mapped[Upload] = relationship(back_populates="checks")


class Transition(Base):
    """One state change of an upload or a version: who, when, why."""

    __tablename__ = "registry_transitions"
    __table_args__ = (Index("ix_registry_transitions_app_version", "app_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[int | None] = mapped_column(
        ForeignKey("registry_uploads.id", ondelete="SET NULL"), index=True, default=None
    )
    app_id: Mapped[str | None] = mapped_column(String(128), default=None)
    version: Mapped[str | None] = mapped_column(String(64), default=None)
    from_state: Mapped[VersionState | None] = mapped_column(string_enum(VersionState), default=None)
    to_state: Mapped[VersionState] = mapped_column(string_enum(VersionState))
    #: ``user:<name>``, ``publisher:<name>`` or ``system``.
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(1000), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)
