"""Everything SQLite-specific, in one place.

SQLite is the embedded default (one ``apprt serve``, one file); PostgreSQL is the
scale-out target. The rest of :mod:`apprt.db` is dialect-neutral and calls the two
functions here unconditionally; both do nothing unless the URL's dialect is SQLite.
The FTS5 full-text helpers at the end (used by the registry's search) are the only
other SQLite-only code.

Per connection we set:

* ``journal_mode=WAL``: readers do not block the writer nor the writer readers, which
  matters as soon as the API serves requests from a thread pool;
* ``synchronous=NORMAL``: safe with WAL (a power loss may drop the last commits but
  never corrupts the file) and much cheaper than ``FULL``'s fsync per commit;
* ``foreign_keys=ON``: SQLite ignores ``FOREIGN KEY`` clauses unless told otherwise,
  and PostgreSQL always enforces them; the two must behave alike;
* ``busy_timeout``: a writer waits for the lock instead of failing at once with
  "database is locked".

Transactions keep pysqlite's default handling (``BEGIN`` deferred until the first
write), which behaves like PostgreSQL's default READ COMMITTED for our purposes and
lets ``busy_timeout`` apply to every write. Should a domain need real SAVEPOINTs on
SQLite, switch to SQLAlchemy's documented "serializable isolation / savepoints"
recipe here (``isolation_level = None`` on connect + an explicit ``BEGIN``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

log = structlog.get_logger(__name__)

#: How long a connection waits for a lock held by another one, in milliseconds.
BUSY_TIMEOUT_MS = 5_000


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _database_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for in-memory databases."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        # URI filenames (``?uri=true``): strip the scheme and any query part.
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def prepare(url: URL) -> dict[str, Any]:
    """Create the database file's parent directory; return extra engine arguments.

    Called before :func:`sqlalchemy.create_engine`; returns ``{}`` for other dialects.
    """
    if not is_sqlite(url):
        return {}
    path = _database_path(url)
    if path is not None:
        path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    return {}


def _on_connect(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # journal_mode is persistent in the file, but setting it is cheap and makes a
        # database created by another tool switch too. In-memory DBs answer "memory".
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
    finally:
        cursor.close()


def install(engine: Engine) -> None:
    """Register the per-connection PRAGMAs on ``engine`` (no-op for other dialects)."""
    if not is_sqlite(engine.url):
        return
    event.listen(engine, "connect", _on_connect)


# -- full-text search (FTS5) ---------------------------------------------------------
#
# A domain that wants ranked full-text search describes its index (a table name, a key
# column, weighted text columns) and calls these; they hold the only FTS5 SQL of the
# code base. Such an index is derived data (rebuilt from the domain's tables at start),
# so it lives outside the Alembic migrations. :func:`create_fts_index` answers False on
# other dialects, or a SQLite built without FTS5, and the domain then falls back to
# portable queries. SQL is built with f-strings from an :class:`FtsIndex`'s names only
# (checked to be plain identifiers, hence the ``noqa: S608``); values are bound.

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class FtsIndex:
    """An FTS5 table: ``key`` (stored, not searched) and weighted text ``columns``."""

    table: str
    key: str
    columns: tuple[tuple[str, float], ...]  # (name, bm25 weight), in table order

    def __post_init__(self) -> None:
        for name in (self.table, self.key, *(c for c, _ in self.columns)):
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"not a plain SQL identifier: {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)


def create_fts_index(engine: Engine, index: FtsIndex) -> bool:
    """Create ``index`` if needed; False (nothing done) unless SQLite with FTS5."""
    if not is_sqlite(engine.url):
        return False
    columns = ", ".join((f"{index.key} UNINDEXED", *index.names))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {index.table} USING fts5("
                    f"{columns}, tokenize = 'unicode61 remove_diacritics 2')"
                )
            )
    except OperationalError as exc:
        log.warning("db.sqlite.fts5_unavailable", table=index.table, error=str(exc.orig))
        return False
    return True


def fts_clear(session: Session, index: FtsIndex) -> None:
    session.execute(text(f"DELETE FROM {index.table}"))  # noqa: S608


def fts_put(session: Session, index: FtsIndex, key: str, values: Mapping[str, str] | None) -> None:
    """Replace the row of ``key`` with ``values`` (one per column); ``None`` removes it."""
    delete = f"DELETE FROM {index.table} WHERE {index.key} = :key"  # noqa: S608
    session.execute(text(delete), {"key": key})
    if values is None:
        return
    names = (index.key, *index.names)
    session.execute(
        text(
            f"INSERT INTO {index.table} ({', '.join(names)}) "  # noqa: S608
            f"VALUES ({', '.join(':' + n for n in names)})"
        ),
        {index.key: key, **{n: values.get(n, "") for n in index.names}},
    )


def fts_search(session: Session, index: FtsIndex, terms: Sequence[str], limit: int) -> list[str]:
    """Keys of the rows matching every term as a prefix, best (bm25) first.

    Terms are quoted, so user text is never FTS5 query syntax.
    """
    if not terms:
        return []
    match = " ".join('"' + t.replace('"', '""') + '"*' for t in terms)
    weights = ", ".join(str(w) for w in (0.0, *(w for _, w in index.columns)))
    rows = session.execute(
        text(
            f"SELECT {index.key} FROM {index.table} WHERE {index.table} MATCH :q "  # noqa: S608
            f"ORDER BY bm25({index.table}, {weights}) LIMIT :limit"
        ),
        {"q": match, "limit": limit},
    )
    return [str(k) for k in rows.scalars()]
