"""The TUF repository's tables.

``tuf_metadata``
    every signed metadata file, one row per ``(role, version)``, stored as the exact
    bytes served (signatures cover a canonical form of ``signed``, so the bytes must
    not be re-serialised). Root versions are kept forever (clients walk the chain
    ``1.root.json``, ``2.root.json``...); other roles keep their recent versions so a
    client that read an older snapshot can still fetch what it names.
``tuf_targets``
    the packages the repository vouches for: target path, length, sha256, and the
    succinct hash bin it belongs to. The ``bins-*`` metadata is generated from it.
``tuf_lock``
    one row, updated first by every writer: on PostgreSQL the row lock serialises
    metadata bumps across replicas; on SQLite the update takes the database's write
    lock. Its ``generation`` counts bumps.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from apprt.db.base import Base, utcnow


class TufMetadata(Base):
    __tablename__ = "tuf_metadata"

    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    expires: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TufTarget(Base):
    __tablename__ = "tuf_targets"

    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    length: Mapped[int]
    bin: Mapped[str] = mapped_column(String(64), index=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class TufLock(Base):
    __tablename__ = "tuf_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(default=0)
