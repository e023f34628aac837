"""Everything SQLite-specific, in one place.

SQLite is the embedded default (one ``apprt serve``, one file); PostgreSQL is the
scale-out target. The rest of :mod:`apprt.db` is dialect-neutral and calls the two
functions here unconditionally; both do nothing unless the URL's dialect is SQLite.

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

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry

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
