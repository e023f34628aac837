"""Engines and sessions, the same way for every backend.

The platform holds one :class:`~sqlalchemy.Engine` per process (created in the
server's lifespan, stashed on ``app.state``) and opens short sessions from it:
one per HTTP request (see :mod:`apprt.db.dependencies`) or one per unit of work in
background code via :func:`session_scope`::

    engine = make_engine(settings)
    sessions = session_factory(engine)
    with session_scope(sessions) as session:
        session.add(thing)
    # committed here; rolled back if the block raised

Sessions do not expire objects on commit, so values read inside a scope stay usable
after it (e.g. to build an HTTP response) without a lazy reload on a closed session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from apprt.db import sqlite
from apprt.settings import Settings


def make_engine(settings: Settings) -> Engine:
    """The engine for ``settings.resolved_database_url()``, with dialect-specific setup."""
    url = make_url(settings.resolved_database_url())
    options = sqlite.prepare(url)
    engine = create_engine(url, pool_pre_ping=True, **options)
    sqlite.install(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed when the block succeeds, rolled back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
