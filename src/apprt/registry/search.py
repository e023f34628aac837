"""Marketplace search: full text over apps' names, descriptions, tags and publishers.

Dialect-specific SQL lives here and nowhere else in the registry:

* :class:`Fts5Search` (SQLite, the embedded default): a standalone FTS5 table
  ``registry_search`` with one row per listed app, ranked by bm25. It is a derived
  index, not data: :func:`ensure` creates it at start and rebuilds it from
  ``registry_apps`` (so it is never out of step after a crash or a restore), and the
  registry updates an app's row in the same transaction that changes its listing.
  Being derived, it is not part of the Alembic migrations.
* :class:`LikeSearch`: portable ``LIKE`` matching, used on any other database and
  when SQLite was built without FTS5. PostgreSQL can get its own class here
  (``tsvector`` + GIN index) without touching the callers.

Queries are split into words; every word must match (a prefix match with FTS5).
Tags filter exactly: an app must carry every tag asked for.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Protocol

import structlog
from sqlalchemy import Engine, String, and_, cast, or_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from apprt.registry.models import Publisher, RegistryApp

log = structlog.get_logger(__name__)

FTS_TABLE = "registry_search"
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 16


def words(query: str) -> list[str]:
    return _WORD.findall(query.lower())[:MAX_WORDS]


class SearchBackend(Protocol):
    def index_app(self, session: Session, app: RegistryApp) -> None:
        """Make ``app``'s row reflect its listing (removed when nothing is listed)."""
        ...

    def search(
        self, session: Session, query: str, tags: Sequence[str], limit: int
    ) -> list[RegistryApp]:
        """Listed apps matching every word of ``query`` and carrying every tag, best first."""
        ...


def _listed(session: Session, tags: Sequence[str]) -> list[RegistryApp]:
    rows = session.scalars(
        select(RegistryApp).where(RegistryApp.latest_version != "").order_by(RegistryApp.app_id)
    ).all()
    return [a for a in rows if set(tags) <= set(a.tags)]


class LikeSearch:
    """Portable search with ``LIKE`` (no ranking beyond name matches first)."""

    def index_app(self, session: Session, app: RegistryApp) -> None:
        return None

    def search(
        self, session: Session, query: str, tags: Sequence[str], limit: int
    ) -> list[RegistryApp]:
        terms = words(query)
        if not terms:
            return _listed(session, tags)[:limit]
        conditions = []
        for term in terms:
            pattern = f"%{term.replace('%', '').replace('_', '')}%"
            conditions.append(
                or_(
                    RegistryApp.app_id.ilike(pattern),
                    RegistryApp.name.ilike(pattern),
                    RegistryApp.description.ilike(pattern),
                    cast(RegistryApp.tags, String).ilike(pattern),
                    Publisher.name.ilike(pattern),
                )
            )
        rows = session.scalars(
            select(RegistryApp)
            .join(Publisher, RegistryApp.publisher_id == Publisher.id)
            .where(RegistryApp.latest_version != "", and_(*conditions))
        ).all()
        matching = [a for a in rows if set(tags) <= set(a.tags)]
        first = terms[0]
        matching.sort(key=lambda a: (first not in a.name.lower(), a.app_id))
        return matching[:limit]


class Fts5Search:
    """SQLite FTS5 index, ranked by bm25 (name weighted above description)."""

    def index_app(self, session: Session, app: RegistryApp) -> None:
        session.execute(text("DELETE FROM registry_search WHERE app_id = :a"), {"a": app.app_id})
        if app.latest_version:
            session.execute(
                text(
                    "INSERT INTO registry_search (app_id, name, description, tags, publisher) "
                    "VALUES (:a, :n, :d, :t, :p)"
                ),
                {
                    "a": app.app_id,
                    "n": f"{app.name} {app.app_id.replace('.', ' ')}",
                    "d": app.description,
                    "t": " ".join(app.tags),
                    "p": app.publisher.name,
                },
            )

    def search(
        self, session: Session, query: str, tags: Sequence[str], limit: int
    ) -> list[RegistryApp]:
        terms = words(query)
        if not terms:
            return _listed(session, tags)[:limit]
        match = " ".join(f'"{t}"*' for t in terms)
        ranked = session.execute(
            text(
                "SELECT app_id FROM registry_search WHERE registry_search MATCH :q "
                "ORDER BY bm25(registry_search, 0.0, 10.0, 2.0, 5.0, 1.0) LIMIT 1000"
            ),
            {"q": match},
        ).scalars()
        order = list(ranked)
        if not order:
            return []
        apps = {
            a.app_id: a
            for a in session.scalars(select(RegistryApp).where(RegistryApp.app_id.in_(order)))
        }
        result = [apps[i] for i in order if i in apps and apps[i].latest_version]
        return [a for a in result if set(tags) <= set(a.tags)][:limit]


_fts_engines: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
_LIKE = LikeSearch()
_FTS = Fts5Search()


def ensure(engine: Engine) -> None:
    """Create (if needed) and rebuild the full-text index of ``engine``'s database.

    Called by the registry's lifespan before any request. On databases other than
    SQLite, or a SQLite without FTS5, searching falls back to :class:`LikeSearch`.
    """
    if engine.dialect.name != "sqlite":
        _fts_engines[engine] = False
        return
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS registry_search USING fts5("
                    "app_id UNINDEXED, name, description, tags, publisher, "
                    "tokenize = 'unicode61 remove_diacritics 2')"
                )
            )
    except OperationalError as exc:
        log.warning("registry.search.fts5_unavailable", error=str(exc.orig))
        _fts_engines[engine] = False
        return
    with Session(engine) as session, session.begin():
        session.execute(text("DELETE FROM registry_search"))
        for app in session.scalars(select(RegistryApp).where(RegistryApp.latest_version != "")):
            _FTS.index_app(session, app)
    _fts_engines[engine] = True


def backend_for(session: Session) -> SearchBackend:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return _FTS if _fts_engines.get(engine) else _LIKE
