"""Who may call the platform: users and their API tokens.

Tokens are stored as their SHA-256 only. A token is 32 random bytes, so a fast
unsalted hash is enough (nothing to brute-force, unlike a password) and it lets
:func:`apprt.accounts.services.authenticate` find the row by an index lookup
instead of comparing against every token. A database dump therefore reveals no
usable token; ``prefix`` keeps a short, harmless part for people to tell tokens apart.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from apprt.db.base import Base, string_enum, utcnow


class Role(StrEnum):
    """A user's platform-wide role; roles inside an organization are :class:`OrgRole`."""

    PLATFORM_ADMIN = "platform_admin"
    ORG_ADMIN = "org_admin"
    MEMBER = "member"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(
        string_enum(Role),
        default=Role.MEMBER,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(default=False)
    #: Argon2id hash (argon2-cffi's encoded form); None: the user logs in by token only.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<User {self.id} {self.name!r} {self.role.value}>"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The start of the token for display (``apprt_`` + 8 random characters).
    prefix: Mapped[str] = mapped_column(String(16))
    #: Hex SHA-256 of the whole token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Session tokens (from password login) expire; API tokens do not unless revoked.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(back_populates="tokens")

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} {self.prefix}… user={self.user_id}>"


class OrgRole(StrEnum):
    """A user's role inside one organization."""

    ORG_ADMIN = "org_admin"
    MEMBER = "member"


class Organization(Base):
    """A tenant: its own installed apps, settings, data and quotas."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Quotas checked by the install engine's resource-allocation step.
    max_apps: Mapped[int] = mapped_column(default=50)
    max_memory_mb: Mapped[int] = mapped_column(default=8192)
    max_storage_mb: Mapped[int] = mapped_column(default=10240)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="organization", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Organization {self.id} {self.slug!r}>"


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[OrgRole] = mapped_column(
        string_enum(OrgRole),
        default=OrgRole.MEMBER,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()
