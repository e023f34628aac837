"""Marketplace search: full text over apps' names, descriptions, tags and publishers.

Two backends, chosen per database by :func:`ensure`:

* :class:`Fts5Search` (SQLite, the embedded default): a standalone FTS5 table
  ``registry_search`` with one row per listed app, ranked by bm25. Its SQL lives in
  :mod:`apprt.db.sqlite` (the one module that holds SQLite-only code); this module only
  says what is indexed. It is a derived index, not data: :func:`ensure` creates it at
  start and rebuilds it from ``registry_apps`` (so it is never out of step after a
  crash or a restore), and the registry updates an app's row in the same transaction
  that changes its listing. Being derived, it is not part of the Alembic migrations.
* :class:`LikeSearch`: portable ``LIKE`` matching, used on any other database and
  when SQLite was built without FTS5. PostgreSQL can get its own backend (``tsvector``
  + GIN index, its SQL in a dialect module of :mod:`apprt.db`) without touching the
  callers.

Queries are split into words; every word must match (a prefix match with FTS5).
Tags filter exactly: an app must carry every tag asked for.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Engine, String, and_, cast, or_, select
from sqlalchemy.orm import Session

from apprt.db import sqlite
from apprt.registry.models import Publisher, RegistryApp

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


#: The FTS5 index (SQLite): one row per listed app; bm25 weights name above tags above
#: description.
INDEX = sqlite.FtsIndex(
    table=FTS_TABLE,
    key="app_id",
    columns=(("name", 10.0), ("description", 2.0), ("tags", 5.0), ("publisher", 1.0)),
)
#: How many ranked keys are fetched before the tag filter and the limit apply.
MAX_RANKED = 1000


class Fts5Search:
    """The full-text index of :mod:`apprt.db.sqlite`, ranked by bm25."""

    def index_app(self, session: Session, app: RegistryApp) -> None:
        values = None
        if app.latest_version:
            values = {
                "name": f"{app.name} {app.app_id.replace('.', ' ')}",
                "description": app.description,
                "tags": " ".join(app.tags),
                "publisher": app.publisher.name,
            }
        sqlite.fts_put(session, INDEX, app.app_id, values)

    def search(
        self, session: Session, query: str, tags: Sequence[str], limit: int
    ) -> list[RegistryApp]:
        terms = words(query)
        if not terms:
            return _listed(session, tags)[:limit]
        order = sqlite.fts_search(session, INDEX, terms, MAX_RANKED)
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

    Called by the registry's lifespan before any request. Where no full-text index can
    be made (a database other than SQLite, a SQLite without FTS5), searching falls back
    to :class:`LikeSearch`.
    """
    if not sqlite.create_fts_index(engine, INDEX):
        _fts_engines[engine] = False
        return
    with Session(engine) as session, session.begin():
        sqlite.fts_clear(session, INDEX)
        for app in session.scalars(select(RegistryApp).where(RegistryApp.latest_version != "")):
            _FTS.index_app(session, app)
    _fts_engines[engine] = True


def backend_for(session: Session) -> SearchBackend:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return _FTS if _fts_engines.get(engine) else _LIKE
