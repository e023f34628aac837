"""Database sessions for HTTP handlers.

A handler takes ``session: DbSession`` and gets a session that is committed when
the handler returns and rolled back when it raises. The dependency uses FastAPI's
``scope="function"`` so the commit happens *before* the response is sent: a
client never sees 200 for a write that then failed to commit.

Handlers that need the session should be plain ``def`` functions (FastAPI runs them
in its thread pool), since SQLAlchemy sessions here are synchronous.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.engine import session_scope


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def db_session(request: Request) -> Iterator[Session]:
    with session_scope(get_session_factory(request)) as session:
        yield session


DbSession = Annotated[Session, Depends(db_session, scope="function")]
