"""Publication hooks: how other domains learn that a version became (un)installable.

The registry calls every listener on ``app.state.registry_listeners`` *inside the
same database transaction* as the state change, with the session that makes it:
a listener that raises rolls the change back, and a listener's own writes commit
together with it (the TUF repository adds or removes its target this way, so the
metadata never disagrees with the registry).

``published`` is called when a version enters the ``published`` state (auto-approved
upload or approved review); ``unpublished`` when a version is removed within the
unpublish window. Deprecating or yanking a version does not call either: the
package stays downloadable (yanked versions remain installable when pinned exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session


@runtime_checkable
class PublicationListener(Protocol):
    """Told, inside the registry's transaction, when versions appear or disappear."""

    def published(
        self, session: Session, *, app_id: str, version: str, sha256: str, length: int
    ) -> None:
        """``app_id@version`` is published; its package blob is ``sha256``, ``length`` bytes."""
        ...

    def unpublished(self, session: Session, *, app_id: str, version: str) -> None:
        """``app_id@version`` was unpublished; its package will no longer be served."""
        ...


def notify_published(
    listeners: Sequence[PublicationListener],
    session: Session,
    *,
    app_id: str,
    version: str,
    sha256: str,
    length: int,
) -> None:
    for listener in listeners:
        listener.published(session, app_id=app_id, version=version, sha256=sha256, length=length)


def notify_unpublished(
    listeners: Sequence[PublicationListener], session: Session, *, app_id: str, version: str
) -> None:
    for listener in listeners:
        listener.unpublished(session, app_id=app_id, version=version)
