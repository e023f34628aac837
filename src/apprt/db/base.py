"""The declarative base every domain's models inherit from.

Two things here exist so the same models behave the same on SQLite and PostgreSQL:

* **A naming convention for constraints.** Alembic can only drop or alter a
  constraint it can name, and SQLite's batch mode (copy-and-move of a table) needs
  names to recreate constraints. Without a convention each backend invents its own
  names and migrations diverge.
* **Enums as strings.** :func:`string_enum` stores a :class:`~enum.StrEnum` as its
  value, validated on the way in but without a CHECK constraint, so adding a member
  never needs a table rebuild on SQLite.
* **UTC timestamps.** :class:`UTCDateTime` accepts only timezone-aware datetimes,
  stores them as UTC (``timestamptz`` on PostgreSQL, an ISO text on SQLite, which has
  no timezone type) and always hands back aware UTC datetimes, so comparing a
  value read from SQLite with :func:`utcnow` never raises "can't compare
  offset-naive and offset-aware datetimes".

Models map ``datetime`` annotations to :class:`UTCDateTime` automatically::

    class Thing(Base):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)
        created_at: Mapped[datetime] = mapped_column(default=utcnow)
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import DateTime, Dialect, Enum, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

#: Deterministic constraint names (``uq_users_name``, ``fk_api_tokens_user_id_users``...).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind models store)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp, stored portably.

    Naive datetimes are refused when written: their zone is a guess, and a wrong
    guess is silent data corruption.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime (use utcnow())")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # SQLite returns what was stored, which process_bind_param made UTC.
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base class of every table; its ``metadata`` is what Alembic migrates."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def string_enum(enum: type[StrEnum], length: int = 32) -> Enum:
    """A column type storing ``enum`` members as their string values (see the module doc)."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )
