"""State changes of versions after validation: review, deprecate, yank, unpublish.

Every change is recorded as a :class:`~apprt.registry.models.Transition` (actor,
time, reason) in the same transaction as the change, and the publication
listeners (:mod:`apprt.registry.hooks`) are called there too: a listener that
raises undoes the change.

Allowed changes::

    pending_review -> published     approve (platform admin)
    pending_review -> rejected      reject, with a reason (platform admin)
    published      -> deprecated    with a message and an optional replacement
    published | deprecated -> yanked   with a reason
    pending_review | published | deprecated | yanked -> unpublished
                                    within the unpublish window, when no other
                                    installable version depends on it
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from apprt.blobs import BlobStore
from apprt.db.base import utcnow
from apprt.registry import search
from apprt.registry.errors import ConflictError, RegistryError
from apprt.registry.hooks import PublicationListener, notify_published, notify_unpublished
from apprt.registry.models import (
    INSTALLABLE_STATES,
    AppVersion,
    RegistryApp,
    Transition,
    Upload,
    VersionState,
)
from apprt.registry.services.queries import dependents_of, newest, versions_of

MAX_REASON = 1000


def record(
    session: Session,
    *,
    to_state: VersionState,
    actor: str,
    reason: str = "",
    from_state: VersionState | None = None,
    upload_id: int | None = None,
    app_id: str | None = None,
    version: str | None = None,
) -> Transition:
    row = Transition(
        upload_id=upload_id,
        app_id=app_id,
        version=version,
        from_state=from_state,
        to_state=to_state,
        actor=actor[:100],
        reason=reason[:MAX_REASON],
    )
    session.add(row)
    return row


def _move(
    session: Session, version: AppVersion, to_state: VersionState, actor: str, reason: str
) -> None:
    record(
        session,
        from_state=version.state,
        to_state=to_state,
        actor=actor,
        reason=reason,
        upload_id=version.upload_id,
        app_id=version.app.app_id,
        version=version.version,
    )
    version.state = to_state


def history(session: Session, app_id: str, version: str | None = None) -> Sequence[Transition]:
    query = select(Transition).where(Transition.app_id == app_id)
    if version is not None:
        query = query.where(Transition.version == version)
    return session.scalars(query.order_by(Transition.at, Transition.id)).all()


def refresh_listing(session: Session, app: RegistryApp) -> None:
    """Point the app's marketplace listing at its newest published/deprecated version."""
    session.flush()
    listed = newest(versions_of(session, app, (VersionState.PUBLISHED, VersionState.DEPRECATED)))
    if listed is not None:
        from apprt.manifest import parse_manifest

        manifest = parse_manifest(listed.manifest_text)
        app.name = manifest.name
        app.description = manifest.description
        app.tags = list(manifest.tags)
        app.latest_version = listed.version
    else:
        app.latest_version = ""
    app.updated_at = utcnow()
    search.backend_for(session).index_app(session, app)


def publish(
    session: Session,
    version: AppVersion,
    *,
    listeners: Sequence[PublicationListener],
    actor: str,
    reason: str,
) -> None:
    """Move ``version`` to ``published`` and tell the listeners (same transaction)."""
    _move(session, version, VersionState.PUBLISHED, actor, reason)
    version.published_at = utcnow()
    session.flush()
    notify_published(
        listeners,
        session,
        app_id=version.app.app_id,
        version=version.version,
        sha256=version.sha256,
        length=version.size,
    )
    refresh_listing(session, version.app)


def _sync_upload(session: Session, version: AppVersion) -> None:
    if version.upload_id is not None:
        upload = session.get(Upload, version.upload_id)
        if upload is not None and upload.version_id == version.id:
            upload.state = version.state


def _require_state(version: AppVersion, allowed: Sequence[VersionState], action: str) -> None:
    if version.state not in allowed:
        names = " or ".join(s.value for s in allowed)
        raise ConflictError.one(
            f"{version.app.app_id}@{version.version} is {version.state.value}; "
            f"only a {names} version can be {action}",
            location="state",
            hint=f"see its history: GET /api/v1/registry/apps/{version.app.app_id}/versions/"
            f"{version.version}/history",
        )


def _require_reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError.one(
            f"{what} needs a reason", location="reason", hint="say why, e.g. --reason '...'"
        )
    return reason


def approve(
    session: Session,
    version: AppVersion,
    *,
    listeners: Sequence[PublicationListener],
    actor: str,
    reason: str = "",
) -> None:
    _require_state(version, (VersionState.PENDING_REVIEW,), "approved")
    publish(session, version, listeners=listeners, actor=actor, reason=reason or "approved")
    _sync_upload(session, version)


def reject(session: Session, version: AppVersion, *, actor: str, reason: str) -> str:
    """Refuse a pending version; returns the blob digest to release after commit."""
    _require_state(version, (VersionState.PENDING_REVIEW,), "rejected")
    _move(session, version, VersionState.REJECTED, actor, _require_reason(reason, "rejecting"))
    _sync_upload(session, version)
    return version.sha256


def deprecate(
    session: Session, version: AppVersion, *, actor: str, message: str, replacement: str = ""
) -> None:
    _require_state(version, (VersionState.PUBLISHED,), "deprecated")
    message = _require_reason(message, "deprecating")
    version.deprecation_message = message[:1000]
    version.replacement = replacement.strip()[:200]
    reason = message + (f" (use {version.replacement} instead)" if version.replacement else "")
    _move(session, version, VersionState.DEPRECATED, actor, reason)
    refresh_listing(session, version.app)


def yank(session: Session, version: AppVersion, *, actor: str, reason: str) -> None:
    _require_state(version, (VersionState.PUBLISHED, VersionState.DEPRECATED), "yanked")
    version.yank_reason = _require_reason(reason, "yanking")[:1000]
    version.yanked_at = utcnow()
    _move(session, version, VersionState.YANKED, actor, version.yank_reason)
    refresh_listing(session, version.app)


def unpublish(
    session: Session,
    version: AppVersion,
    *,
    listeners: Sequence[PublicationListener],
    actor: str,
    reason: str,
    window: timedelta,
    is_admin: bool = False,
) -> str | None:
    """Remove ``version``; returns the blob digest to delete after commit (or ``None``).

    Only within ``window`` after publication (the platform admin is bound by it
    too: installs may already use the version), and only when no other installable
    version depends on it.
    """
    _require_state(version, (VersionState.PENDING_REVIEW, *INSTALLABLE_STATES), "unpublished")
    since = version.published_at or version.created_at
    if version.published_at is not None and utcnow() - since > window:
        hours = window.total_seconds() / 3600
        raise ConflictError.one(
            f"{version.app.app_id}@{version.version} was published more than {hours:g} hours "
            "ago; it can no longer be unpublished",
            location="version",
            hint="yank it instead (`apprt registry yank APP VERSION --reason ...`): no new "
            "installs, existing ones keep running",
        )
    dependents = dependents_of(session, version)
    if dependents:
        names = ", ".join(f"{d.app.app_id}@{d.version}" for d in dependents[:10])
        raise ConflictError.one(
            f"{version.app.app_id}@{version.version} is needed by {names}",
            location="version",
            hint="unpublish or yank the dependents first, or yank this version instead",
        )
    was_published = version.state in INSTALLABLE_STATES
    _move(session, version, VersionState.UNPUBLISHED, actor, reason or "unpublished")
    session.flush()
    if was_published:
        notify_unpublished(listeners, session, app_id=version.app.app_id, version=version.version)
    refresh_listing(session, version.app)
    _sync_upload(session, version)
    return version.sha256


def blob_unreferenced(session: Session, digest: str, *, ignore_upload: int | None = None) -> bool:
    """True when no version (other than unpublished and rejected ones) and no running
    upload uses the blob ``digest``."""
    used = session.scalars(
        select(AppVersion.id).where(
            AppVersion.sha256 == digest,
            AppVersion.state.not_in((VersionState.UNPUBLISHED, VersionState.REJECTED)),
        )
    ).first()
    if used is not None:
        return False
    query = select(Upload.id).where(
        Upload.sha256 == digest,
        Upload.state.in_((VersionState.UPLOADED, VersionState.VALIDATING)),
    )
    if ignore_upload is not None:
        query = query.where(Upload.id != ignore_upload)
    return session.scalars(query).first() is None


def release_blob(
    session: Session, blob_store: BlobStore, digest: str, *, ignore_upload: int | None = None
) -> bool:
    """Delete the blob when nothing uses it any more; True if it was deleted."""
    if blob_unreferenced(session, digest, ignore_upload=ignore_upload):
        return blob_store.delete(digest)
    return False
