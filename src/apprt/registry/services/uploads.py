"""The upload job: from stored bytes to a rejected, pending or published version.

:func:`process_upload` is called once the package's bytes are in the blob store
(streamed there by the view, cut at the size limit). It runs in a worker thread
and commits in short steps, so another client can poll the job while it runs:

1. record the job (``uploaded``, then ``validating``);
2. run every check of :data:`~apprt.registry.checks.pipeline.PIPELINE` on a
   read-only session, the content checks on a temporary extraction;
3. in one transaction: store the results and apply the policy:

   * a check failed → ``rejected``; the blob is deleted unless something else uses it;
   * identical bytes to an existing ``id@version`` → the job points at that version
     (idempotent; nothing new);
   * otherwise the version row is created (``UNIQUE(app, version)`` settles two
     concurrent uploads: the loser finds the winner and is either idempotent or a
     409) as ``pending_review`` when a check asked for review (new or sensitive
     permissions, risky code), else ``published`` (auto-approved) with the
     publication listeners called in that transaction.

Checks run inline in the upload request: packages are bounded by
:class:`~apprt.package.PackageLimits` and validating one takes well under a second
for typical sizes, so the uploader gets the real outcome (201, 200, 403, 409, 422)
in the response, and the job stays readable at ``GET /api/v1/registry/uploads/{id}``.
Jobs a crash interrupted are closed at the next start (:func:`close_interrupted`).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from apprt.blobs import BlobRef, BlobStore
from apprt.db.base import utcnow
from apprt.db.engine import session_scope
from apprt.errors import PackageError, Problem
from apprt.package import extract_package
from apprt.registry.checks import CheckContext, CheckOutcome, timed
from apprt.registry.checks.archive import relabel
from apprt.registry.checks.pipeline import EXTRACT_AFTER, PIPELINE
from apprt.registry.config import RegistryConfig
from apprt.registry.errors import (
    NotFoundError,
    UploadConflictError,
    UploadForbiddenError,
    UploadRejectedError,
)
from apprt.registry.hooks import PublicationListener
from apprt.registry.models import (
    AppVersion,
    CheckResult,
    CheckStatus,
    Publisher,
    RegistryApp,
    Transition,
    Upload,
    VersionState,
)
from apprt.registry.services import lifecycle
from apprt.registry.services.queries import find_app, find_version

log = structlog.get_logger(__name__)

#: A job still ``uploaded``/``validating`` after this long was interrupted by a crash.
STALE_JOB_AGE = timedelta(minutes=15)
SYSTEM = "system"


@dataclass(frozen=True)
class RegistryEnv:
    """What the pipeline needs from the running platform."""

    sessions: sessionmaker[Session]
    blob_store: BlobStore
    config: RegistryConfig
    listeners: Sequence[PublicationListener]


@dataclass
class _Run:
    """The checks' outcomes, in pipeline order."""

    outcomes: list[tuple[str, CheckOutcome, float]]
    ctx: CheckContext

    @property
    def failures(self) -> list[CheckOutcome]:
        return [o for _, o, _ in self.outcomes if o.status == CheckStatus.FAIL]

    @property
    def review_reasons(self) -> list[str]:
        return [f"{name}: {o.summary}" for name, o, _ in self.outcomes if o.needs_review]


def load_upload(session: Session, upload_id: int) -> Upload:
    row = session.scalars(
        select(Upload)
        .where(Upload.id == upload_id)
        .options(selectinload(Upload.checks), selectinload(Upload.publisher))
    ).first()
    if row is None:
        raise NotFoundError.one(
            f"no upload {upload_id}",
            location="upload_id",
            hint="use the id `apprt publish` printed (or the Location of the upload response)",
        )
    return row


def _start_job(
    env: RegistryEnv, publisher_id: int, ref: BlobRef, filename: str, backport: bool, actor: str
) -> int:
    with session_scope(env.sessions) as session:
        upload = Upload(
            publisher_id=publisher_id,
            state=VersionState.VALIDATING,
            sha256=ref.digest,
            size=ref.size,
            filename=filename[:255],
            backport=backport,
        )
        session.add(upload)
        session.flush()
        lifecycle.record(
            session,
            upload_id=upload.id,
            to_state=VersionState.UPLOADED,
            actor=actor,
            reason=f"{ref.size} bytes, sha256 {ref.digest}",
        )
        lifecycle.record(
            session,
            upload_id=upload.id,
            from_state=VersionState.UPLOADED,
            to_state=VersionState.VALIDATING,
            actor=SYSTEM,
        )
        return upload.id


def _crashed(name: str, exc: Exception) -> CheckOutcome:
    error_id = secrets.token_hex(8)
    log.error("registry.check_crashed", check=name, error_id=error_id, exc_info=exc)
    return CheckOutcome(
        CheckStatus.FAIL,
        "the check could not complete",
        [
            Problem(
                f"the {name} check could not complete (error id {error_id})",
                hint="report this to the registry operator with the error id",
            )
        ],
        http_status=500,
        stop=True,
    )


def _run_checks(
    env: RegistryEnv,
    session: Session,
    publisher: Publisher,
    scopes: tuple[str, ...],
    ref: BlobRef,
    backport: bool,
    workdir: Path,
) -> _Run:
    ctx = CheckContext(
        session=session,
        config=env.config,
        blob_store=env.blob_store,
        publisher=publisher,
        scopes=scopes,
        digest=ref.digest,
        size=ref.size,
        backport=backport,
        workdir=workdir,
    )
    outcomes: list[tuple[str, CheckOutcome, float]] = []
    stopped: str | None = None
    for check in PIPELINE:
        if stopped is not None or any(getattr(ctx, need) is None for need in check.needs):
            reason = (
                f"not run: {stopped}"
                if stopped
                else "not run: an earlier check did not produce what it needs"
            )
            outcomes.append((check.name, CheckOutcome(CheckStatus.SKIPPED, reason), 0.0))
            continue
        try:
            outcome, ms = timed(check, ctx)
        except Exception as exc:  # a bug must not leave the job hanging
            outcome, ms = _crashed(check.name, exc), 0.0
        outcomes.append((check.name, outcome, ms))
        if outcome.stop:
            if ctx.existing is not None:
                stopped = "identical to the existing version"
            else:
                stopped = f"the {check.name} check stopped the pipeline"
            continue
        if check.name == EXTRACT_AFTER and outcome.status != CheckStatus.FAIL:
            stored_as = ""
            try:
                with env.blob_store.open(ref.digest) as stream:
                    stored_as = str(getattr(stream, "name", ""))
                    extract_package(stream, workdir / "package")
                ctx.root = workdir / "package"
            except PackageError as exc:
                problems = relabel(exc.problems, stored_as)
                outcomes.append(
                    (
                        "extract",
                        CheckOutcome(CheckStatus.FAIL, "extraction failed", problems, stop=True),
                        0.0,
                    )
                )
                stopped = "the package could not be extracted"
    return _Run(outcomes, ctx)


def _store_results(session: Session, upload: Upload, run: _Run) -> None:
    manifest = run.ctx.manifest
    if manifest is not None:
        upload.app_id, upload.version = manifest.id, manifest.version
        # The job's first transitions predate the manifest: name the version there too.
        session.execute(
            update(Transition)
            .where(Transition.upload_id == upload.id, Transition.app_id.is_(None))
            .values(app_id=manifest.id, version=manifest.version)
        )
    for position, (name, outcome, ms) in enumerate(run.outcomes):
        session.add(
            CheckResult(
                upload_id=upload.id,
                position=position,
                name=name,
                status=outcome.status,
                needs_review=outcome.needs_review,
                summary=outcome.summary[:500],
                problems=[p.as_dict() for p in outcome.problems],
                details=outcome.details,
                duration_ms=round(ms, 3),
            )
        )


def _reject(
    env: RegistryEnv, upload_id: int, run: _Run | None, problems: list[Problem], status: int
) -> UploadRejectedError:
    """Close the job as rejected, release the blob, and build the error to raise."""
    with session_scope(env.sessions) as session:
        upload = load_upload(session, upload_id)
        if run is not None and not upload.checks:
            _store_results(session, upload, run)
        reason = "; ".join(str(p) for p in problems[:5])
        lifecycle.record(
            session,
            upload_id=upload.id,
            from_state=upload.state,
            to_state=VersionState.REJECTED,
            actor=SYSTEM,
            reason=reason,
            app_id=upload.app_id,
            version=upload.version,
        )
        upload.state = VersionState.REJECTED
        upload.finished_at = utcnow()
        digest = upload.sha256
    with session_scope(env.sessions) as session:
        lifecycle.release_blob(session, env.blob_store, digest)
    title = f"upload {upload_id} rejected"
    if status == 403:
        return UploadForbiddenError(problems, upload_id=upload_id, title=title)
    if status == 409:
        return UploadConflictError(problems, upload_id=upload_id, title=title)
    return UploadRejectedError(problems, upload_id=upload_id, title=title)


def _finish_existing(session: Session, upload: Upload, existing: AppVersion) -> None:
    upload.idempotent = True
    upload.version_id = existing.id
    lifecycle.record(
        session,
        upload_id=upload.id,
        from_state=upload.state,
        to_state=existing.state,
        actor=SYSTEM,
        reason=f"identical to the existing {existing.app.app_id}@{existing.version}; "
        "nothing new was created",
        app_id=existing.app.app_id,
        version=existing.version,
    )
    upload.state = existing.state
    upload.finished_at = utcnow()


def _create_version(env: RegistryEnv, session: Session, upload: Upload, run: _Run) -> None:
    ctx = run.ctx
    manifest = ctx.manifest
    assert manifest is not None
    app = find_app(session, manifest.id)
    if app is None:
        app = RegistryApp(
            app_id=manifest.id,
            publisher_id=upload.publisher_id,
            name=manifest.name,
            description=manifest.description,
            tags=list(manifest.tags),
        )
        session.add(app)
        session.flush()
    version = find_version(session, app, manifest.version)
    if version is None:
        version = AppVersion(app=app, version=manifest.version)
        session.add(version)
    elif version.state != VersionState.REJECTED:  # appeared since the checks ran
        raise IntegrityError("version exists", None, Exception("registry_versions unique"))
    version.state = VersionState.VALIDATING
    version.sha256 = upload.sha256
    version.size = upload.size
    version.manifest_text = ctx.info.manifest_text if ctx.info else ""
    version.platform = manifest.platform
    version.dependencies = dict(manifest.dependencies)
    version.permissions = sorted(r.permission for r in manifest.permissions)
    version.backport = upload.backport
    version.upload_id = upload.id
    version.created_at = utcnow()
    version.published_at = None
    session.flush()  # raises IntegrityError when a concurrent upload won
    upload.version_id = version.id
    reasons = run.review_reasons
    if reasons:
        version.state = VersionState.PENDING_REVIEW
        lifecycle.record(
            session,
            upload_id=upload.id,
            from_state=VersionState.VALIDATING,
            to_state=VersionState.PENDING_REVIEW,
            actor=SYSTEM,
            reason="review needed: " + "; ".join(reasons),
            app_id=manifest.id,
            version=manifest.version,
        )
    else:
        lifecycle.publish(
            session,
            version,
            listeners=env.listeners,
            actor=SYSTEM,
            reason="auto-approved: every check passed, no new or sensitive permission",
        )
    upload.state = version.state
    upload.finished_at = utcnow()


def process_upload(
    env: RegistryEnv,
    *,
    publisher_id: int,
    scopes: Sequence[str],
    ref: BlobRef,
    filename: str = "",
    backport: bool = False,
    actor: str,
) -> tuple[Upload, bool]:
    """Validate the stored package ``ref`` and apply the policy.

    Returns the finished job and whether a new version was created (``False`` for an
    idempotent re-upload). Raises :class:`UploadRejectedError` (422),
    :class:`UploadConflictError` (409) or :class:`UploadForbiddenError` (403) after
    recording the rejection; the job is readable either way.
    """
    try:
        upload_id = _start_job(env, publisher_id, ref, filename, backport, actor)
    except BaseException:
        with session_scope(env.sessions) as session:
            lifecycle.release_blob(session, env.blob_store, ref.digest)
        raise
    run: _Run | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="apprt-upload-") as tmp,
            env.sessions() as session,
        ):
            publisher = session.get(Publisher, publisher_id)
            assert publisher is not None
            run = _run_checks(env, session, publisher, tuple(scopes), ref, backport, Path(tmp))
        # (closing the read-only session released its snapshot; what the checks
        # loaded stays readable, detached)
        failures = run.failures
        if failures:
            problems = [p for o in failures for p in o.problems]
            status = max(o.http_status for o in failures)
            if status >= 500:
                status = 422
            raise _reject(env, upload_id, run, problems, status)
        created = _finalize(env, upload_id, run)
    except UploadRejectedError:
        raise
    except Exception:
        _reject(
            env,
            upload_id,
            run,
            [Problem("the upload could not be processed", hint="see the server log")],
            500,
        )
        raise
    with env.sessions() as session:
        return load_upload(session, upload_id), created


def _finalize(env: RegistryEnv, upload_id: int, run: _Run) -> bool:
    existing = run.ctx.existing
    try:
        with session_scope(env.sessions) as session:
            upload = load_upload(session, upload_id)
            _store_results(session, upload, run)
            if existing is not None:
                row = session.get(AppVersion, existing.id)
                assert row is not None
                _finish_existing(session, upload, row)
                return False
            _create_version(env, session, upload, run)
            return True
    except IntegrityError:
        # A concurrent upload created the same id@version first: settle against it.
        manifest = run.ctx.manifest
        assert manifest is not None
        with session_scope(env.sessions) as session:
            app = find_app(session, manifest.id)
            winner = find_version(session, app, manifest.version) if app else None
            upload = load_upload(session, upload_id)
            if winner is not None and winner.sha256 == upload.sha256:
                _store_results(session, upload, run)
                _finish_existing(session, upload, winner)
                return False
        where = f"{manifest.id}@{manifest.version}"
        raise _reject(
            env,
            upload_id,
            run,
            [
                Problem(
                    f"{where} was published by a concurrent upload with different content"
                    if winner is not None
                    else f"{where} could not be created (a concurrent change); upload again",
                    file="app.toml",
                    location="version",
                    hint="bump the version and upload again",
                )
            ],
            409,
        ) from None


def close_interrupted(env: RegistryEnv, *, older_than: timedelta = STALE_JOB_AGE) -> int:
    """Reject jobs a crash left ``uploaded``/``validating``; release their blobs."""
    cutoff = utcnow() - older_than
    with session_scope(env.sessions) as session:
        stale = session.scalars(
            select(Upload).where(
                Upload.state.in_((VersionState.UPLOADED, VersionState.VALIDATING)),
                Upload.created_at < cutoff,
            )
        ).all()
        digests = set()
        for upload in stale:
            lifecycle.record(
                session,
                upload_id=upload.id,
                from_state=upload.state,
                to_state=VersionState.REJECTED,
                actor=SYSTEM,
                reason="interrupted (the registry stopped during validation); upload again",
                app_id=upload.app_id,
                version=upload.version,
            )
            upload.state = VersionState.REJECTED
            upload.finished_at = utcnow()
            digests.add(upload.sha256)
    if digests:
        with session_scope(env.sessions) as session:
            for digest in digests:
                lifecycle.release_blob(session, env.blob_store, digest)
        log.info("registry.interrupted_uploads_closed", count=len(stale))
    return len(stale)


def list_uploads(
    session: Session, *, publisher_id: int | None, limit: int = 50
) -> Sequence[Upload]:
    query = select(Upload).options(selectinload(Upload.checks), selectinload(Upload.publisher))
    if publisher_id is not None:
        query = query.where(Upload.publisher_id == publisher_id)
    return session.scalars(query.order_by(Upload.id.desc()).limit(limit)).all()
