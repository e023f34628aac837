"""The registry's TUF repository: signs, stores and bumps metadata.

Roles (``docs/tuf.md`` has the picture and the operator's procedures):

=============  ==========  =================================================================
role           key         signs
=============  ==========  =================================================================
root           offline     the keys of every top-level role (``N.root.json``, a chain)
targets        offline     a succinct hash-bin delegation (TAP 15) of every target path to
                           ``bins-0`` ... ``bins-f`` under the online ``bins`` key
bins-*         online      the packages: ``<app id>/<version>.apppkg``, length and sha256
snapshot       online      the version (and length, sha256) of targets and every bin
timestamp      online      the version of the newest snapshot; short-lived
=============  ==========  =================================================================

Why a delegation: publishing must not need an offline key, yet TUF's top-level
targets role names the targets. As in PEP 458 (PyPI), top-level targets only
delegates, is signed once at bootstrap (and at each renewal, with the offline key),
and the delegated bins hold the packages and are re-signed online on every publish.
Hash bins keep each publish's re-signing and each client's download small however
many packages there are.

Consistent snapshots are on: every metadata version stays addressable as
``N.<role>.json`` and targets as ``<app id>/<sha256>.<version>.apppkg``, so a client
never sees a mix of old and new files.

Every write starts by updating the single ``tuf_lock`` row (see
:mod:`apprt.registry.tuf.models`), so concurrent publishes, refreshes and replicas
bump versions one at a time, inside the caller's transaction: the registry calls
:meth:`TufRepository.published` in the same transaction as the state change, so the
metadata never disagrees with the registry, and a failure rolls both back.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import structlog
from securesystemslib.signer import Signer  # type: ignore[attr-defined]
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

# python-tuf documents tuf.api.metadata as the import path; the names are defined in a
# private module and re-exported implicitly, which mypy --strict flags.
from tuf.api.metadata import (  # type: ignore[attr-defined]
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from apprt.db.base import utcnow
from apprt.db.engine import session_scope
from apprt.errors import ApprtError, Problem
from apprt.registry.tuf.config import TufConfig
from apprt.registry.tuf.keys import TufKeyError, load_key_file, load_or_generate
from apprt.registry.tuf.models import TufLock, TufMetadata, TufTarget
from apprt.settings import Settings

log = structlog.get_logger(__name__)

BINS_PREFIX = "bins"
ONLINE_KEYS = ("bins", "snapshot", "timestamp")
_SERIALIZER = JSONSerializer(compact=True)
_S = TypeVar("_S", Root, Timestamp, Snapshot, Targets)

__all__ = [
    "BINS_PREFIX",
    "TufConflictError",
    "TufRepository",
    "TufStateError",
    "target_path",
]


class TufConflictError(ApprtError):
    """A target path is already signed with other content (HTTP 409)."""

    status_code: ClassVar[int] = 409


class TufStateError(ApprtError):
    """The repository's keys or metadata are not what they should be (start-up, CLI)."""

    status_code: ClassVar[int] = 500


def target_path(app_id: str, version: str) -> str:
    """The TUF target path of a package: ``<app id>/<version>.apppkg``."""
    return f"{app_id}/{version}.apppkg"


def _encode(metadata: Metadata[Any]) -> bytes:
    return metadata.to_bytes(_SERIALIZER)


def _load(body: bytes, kind: type[_S]) -> Metadata[_S]:
    metadata = cast("Metadata[_S]", Metadata.from_bytes(body))
    if not isinstance(metadata.signed, kind):
        raise TufStateError.single(f"stored metadata is {metadata.signed.type}, not {kind.type}")
    return metadata


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _metafile(version: int, body: bytes) -> MetaFile:
    return MetaFile(version=version, length=len(body), hashes={"sha256": _sha256(body)})


class TufRepository:
    """The repository of one platform: its keys and its metadata in the database.

    Also the registry's :class:`~apprt.registry.hooks.PublicationListener`.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        config: TufConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.config = config if config is not None else TufConfig()
        self.clock = clock
        self._signers: dict[str, Signer] = {}
        self._signer_lock = threading.Lock()

    # -- keys ------------------------------------------------------------------------

    def key_path(self, role: str) -> Path:
        return self.config.key_path(role, self.settings)

    def signer(self, role: str) -> Signer:
        """The signer of an online role (``bins``, ``snapshot``, ``timestamp``), loaded
        from its key file once and kept."""
        with self._signer_lock:
            signer = self._signers.get(role)
            if signer is None:
                signer = load_key_file(self.key_path(role))
                self._signers[role] = signer
            return signer

    def _online(self, session: Session, role: str) -> Signer:
        """The online signer of ``role``, reloaded from its key file when the metadata
        no longer trusts the one in memory (the key was rotated by another process)."""
        signer = self.signer(role)
        trusted = self._trusted_keyids(session, role)
        if signer.public_key.keyid in trusted:
            return signer
        with self._signer_lock:
            self._signers.pop(role, None)
        signer = self.signer(role)
        if signer.public_key.keyid not in trusted:
            raise TufStateError.single(
                f"the {role} key file is not a key the repository's metadata trusts",
                file=str(self.key_path(role)),
                hint="put the rotated key file in place (`apprt registry tuf rotate`)",
            )
        log.info("tuf.key_reloaded", role=role, keyid=signer.public_key.keyid)
        return signer

    def _trusted_keyids(self, session: Session, role: str) -> set[str]:
        if role == "bins":
            return set(self._succinct(session).keyids)
        return set(self.root(session).signed.roles[role].keyids)

    def offline_signer(self, role: str) -> Signer | None:
        """root's or targets' signer if its key file is where the settings say, else
        None (kept offline). Read each time, never kept in memory."""
        try:
            return load_key_file(self.key_path(role))
        except TufKeyError:
            return None

    # -- bootstrap -------------------------------------------------------------------

    def bootstrap(self) -> bool:
        """Create keys and the first metadata if the database has none; check that the
        online keys match the metadata otherwise. True if the repository was created."""
        with session_scope(self.sessions) as session:
            if session.get(TufLock, 1) is None:
                session.add(TufLock(id=1, generation=0))
        # (A concurrent replica may have inserted it first: the primary key keeps one.)
        try:
            with session_scope(self.sessions) as session:
                self._lock(session)
                if self._latest_row(session, "root") is not None:
                    self._check_keys(session)
                    return False
                self._create(session)
                return True
        except IntegrityError:
            # Another replica bootstrapped between our check and insert.
            with session_scope(self.sessions) as session:
                self._check_keys(session)
            return False

    def _create(self, session: Session) -> None:
        signers = {role: load_or_generate(self.key_path(role)) for role in self._all_roles()}
        now = self.clock()
        root = Root(expires=self._expiry("root", now), consistent_snapshot=True)
        for role in ("root", "targets", "snapshot", "timestamp"):
            root.add_key(signers[role].public_key, role)
        self._store(session, "root", Metadata(root), signers["root"])

        bins_key = signers["bins"].public_key
        succinct = SuccinctRoles(
            keyids=[bins_key.keyid],
            threshold=1,
            bit_length=self.config.bin_bits,
            name_prefix=BINS_PREFIX,
        )
        targets = Targets(
            expires=self._expiry("targets", now),
            delegations=Delegations(keys={bins_key.keyid: bins_key}, succinct_roles=succinct),
        )
        meta: dict[str, MetaFile] = {}
        body = self._store(session, "targets", Metadata(targets), signers["targets"])
        meta["targets.json"] = _metafile(1, body)
        for name in succinct.get_roles():
            body = self._store(
                session, name, Metadata(Targets(expires=self._expiry(name, now))), signers["bins"]
            )
            meta[f"{name}.json"] = _metafile(1, body)
        snapshot = Snapshot(expires=self._expiry("snapshot", now), meta=meta)
        body = self._store(session, "snapshot", Metadata(snapshot), signers["snapshot"])
        timestamp = Timestamp(
            expires=self._expiry("timestamp", now), snapshot_meta=_metafile(1, body)
        )
        self._store(session, "timestamp", Metadata(timestamp), signers["timestamp"])
        with self._signer_lock:  # offline keys are never kept in memory
            self._signers.update({r: signers[r] for r in ONLINE_KEYS})
        log.info(
            "tuf.bootstrapped",
            key_dir=str(self.config.resolved_key_dir(self.settings)),
            bins=2**self.config.bin_bits,
        )

    @staticmethod
    def _all_roles() -> tuple[str, ...]:
        return ("root", "targets", "bins", "snapshot", "timestamp")

    def _check_keys(self, session: Session) -> None:
        """The online keys on disk must be the ones root and targets delegate to."""
        problems: list[Problem] = []
        expected = {role: self._trusted_keyids(session, role) for role in ONLINE_KEYS}
        for role, keyids in expected.items():
            try:
                keyid = self.signer(role).public_key.keyid
            except TufKeyError as exc:
                problems.extend(exc.problems)
                continue
            if keyid not in keyids:
                problems.append(
                    Problem(
                        reason=f"the {role} key file is not a key the repository's metadata "
                        f"trusts for {role}",
                        file=str(self.key_path(role)),
                        hint="restore the original key file, or rotate the key "
                        "(`apprt registry tuf rotate`, needs the root or targets key)",
                    )
                )
        if problems:
            raise TufStateError(problems, title="TUF keys do not match the repository")

    # -- reading ---------------------------------------------------------------------

    def _latest_row(self, session: Session, role: str) -> TufMetadata | None:
        return session.scalars(
            select(TufMetadata)
            .where(TufMetadata.role == role)
            .order_by(TufMetadata.version.desc())
            .limit(1)
        ).first()

    def metadata_bytes(
        self, session: Session, role: str, version: int | None = None
    ) -> bytes | None:
        """The stored bytes of ``role`` at ``version`` (newest when None), or None."""
        if version is None:
            row = self._latest_row(session, role)
        else:
            row = session.get(TufMetadata, (role, version))
        return row.body if row is not None else None

    def _latest(self, session: Session, role: str, kind: type[_S]) -> Metadata[_S]:
        row = self._latest_row(session, role)
        if row is None:
            raise TufStateError.single(
                f"no {role} metadata", hint="start the server once to bootstrap the repository"
            )
        return _load(row.body, kind)

    def root(self, session: Session) -> Metadata[Root]:
        return self._latest(session, "root", Root)

    def _succinct(self, session: Session) -> SuccinctRoles:
        delegations = self._latest(session, "targets", Targets).signed.delegations
        if delegations is None or delegations.succinct_roles is None:
            raise TufStateError.single("targets metadata has no hash-bin delegation")
        return delegations.succinct_roles

    def target(self, session: Session, path: str) -> TufTarget | None:
        return session.get(TufTarget, path)

    def expiries(self, session: Session) -> dict[str, tuple[int, datetime]]:
        """Newest version and expiry of every role."""
        latest = (
            select(TufMetadata.role, func.max(TufMetadata.version))
            .group_by(TufMetadata.role)
            .subquery()
        )
        rows = session.execute(
            select(TufMetadata.role, TufMetadata.version, TufMetadata.expires).join(
                latest,
                (TufMetadata.role == latest.c.role) & (TufMetadata.version == latest.c[1]),
            )
        ).all()
        return {role: (version, expires) for role, version, expires in rows}

    # -- writing ---------------------------------------------------------------------

    def _lock(self, session: Session) -> None:
        """Serialise writers: a row lock on PostgreSQL, the write lock on SQLite."""
        result = session.execute(
            update(TufLock).where(TufLock.id == 1).values(generation=TufLock.generation + 1)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            session.add(TufLock(id=1, generation=1))
            session.flush()

    def _expiry(self, role: str, now: datetime) -> datetime:
        return (now + self.config.lifetime(role)).replace(microsecond=0)

    def _new_version(
        self, session: Session, role: str, signed: _S, signer: Signer, now: datetime
    ) -> bytes:
        signed.version += 1
        signed.expires = self._expiry(role, now)
        body = self._store(session, role, Metadata(signed), signer)
        self._prune(session, role)
        return body

    def _store(self, session: Session, role: str, metadata: Metadata[Any], signer: Signer) -> bytes:
        """Sign ``metadata`` as ``role`` (``bins-3`` is a ``targets`` payload) and store it."""
        metadata.signatures.clear()
        metadata.sign(signer)
        body = _encode(metadata)
        session.add(
            TufMetadata(
                role=role,
                version=metadata.signed.version,
                body=body,
                expires=metadata.signed.expires,
            )
        )
        session.flush()
        return body

    def _prune(self, session: Session, role: str) -> None:
        if role == "root":
            return  # clients walk the whole root chain
        keep = self.config.keep_versions
        newest = self._latest_row(session, role)
        if newest is not None and newest.version > keep:
            session.execute(
                delete(TufMetadata).where(
                    TufMetadata.role == role, TufMetadata.version <= newest.version - keep
                )
            )

    def _bump_bins(
        self, session: Session, names: Iterable[str], now: datetime
    ) -> dict[str, MetaFile]:
        changed: dict[str, MetaFile] = {}
        for name in sorted(set(names)):
            current = self._latest(session, name, Targets).signed
            rows = session.scalars(select(TufTarget).where(TufTarget.bin == name)).all()
            current.targets = {
                row.path: TargetFile(
                    length=row.length,
                    hashes={"sha256": row.sha256},
                    path=row.path,
                    unrecognized_fields={"custom": {"app_id": row.app_id, "version": row.version}},
                )
                for row in rows
            }
            body = self._new_version(session, name, current, self._online(session, "bins"), now)
            changed[f"{name}.json"] = _metafile(current.version, body)
        return changed

    def _bump_snapshot(
        self, session: Session, changed: dict[str, MetaFile], now: datetime
    ) -> MetaFile:
        snapshot = self._latest(session, "snapshot", Snapshot).signed
        snapshot.meta.update(changed)
        body = self._new_version(
            session, "snapshot", snapshot, self._online(session, "snapshot"), now
        )
        return _metafile(snapshot.version, body)

    def _bump_timestamp(self, session: Session, snapshot: MetaFile | None, now: datetime) -> None:
        timestamp = self._latest(session, "timestamp", Timestamp).signed
        if snapshot is not None:
            timestamp.snapshot_meta = snapshot
        self._new_version(session, "timestamp", timestamp, self._online(session, "timestamp"), now)

    # -- the registry's listener -----------------------------------------------------

    def published(
        self, session: Session, *, app_id: str, version: str, sha256: str, length: int
    ) -> None:
        """Sign ``<app id>/<version>.apppkg`` into its bin; bump snapshot and timestamp."""
        path = target_path(app_id, version)
        self._lock(session)
        existing = session.get(TufTarget, path)
        if existing is not None:
            if existing.sha256 == sha256 and existing.length == length:
                return  # already signed: idempotent
            raise TufConflictError.single(
                f"{path} is already signed with other content (sha256 {existing.sha256})",
                location="target",
                hint="a published version is immutable; publish a new version",
            )
        name = self._succinct(session).get_role_for_target(path)
        session.add(
            TufTarget(
                path=path, app_id=app_id, version=version, sha256=sha256, length=length, bin=name
            )
        )
        session.flush()
        now = self.clock()
        snapshot = self._bump_snapshot(session, self._bump_bins(session, [name], now), now)
        self._bump_timestamp(session, snapshot, now)
        log.info("tuf.target_added", path=path, sha256=sha256, bin=name)

    def unpublished(self, session: Session, *, app_id: str, version: str) -> None:
        """Remove the version's target; bump its bin, snapshot and timestamp."""
        path = target_path(app_id, version)
        self._lock(session)
        existing = session.get(TufTarget, path)
        if existing is None:
            return
        name = existing.bin
        session.delete(existing)
        session.flush()
        now = self.clock()
        snapshot = self._bump_snapshot(session, self._bump_bins(session, [name], now), now)
        self._bump_timestamp(session, snapshot, now)
        log.info("tuf.target_removed", path=path, bin=name)

    # -- keeping metadata fresh ------------------------------------------------------

    def refresh(self, *, force: bool = False) -> list[str]:
        """Re-sign every role with less than half its lifetime left (all with ``force``);
        root and targets only when their key file is present. Returns the roles
        re-signed, in order."""
        with session_scope(self.sessions) as session:
            return self.refresh_in(session, force=force)

    def refresh_in(self, session: Session, *, force: bool = False) -> list[str]:
        now = self.clock()
        if not force and not self._due(self.expiries(session), now):
            return []  # the common case: no lock taken
        self._lock(session)
        expiries = self.expiries(session)  # re-read under the lock
        due = {role for role in expiries if force or self._is_due(role, expiries[role][1], now)}
        done: list[str] = []
        for role in ("root", "targets"):
            if role not in due:
                continue
            signer = self.offline_signer(role)
            if signer is None:
                log.warning(
                    "tuf.offline_role_expiring",
                    role=role,
                    expires=expiries[role][1].isoformat(),
                    hint=f"run `apprt registry tuf renew {role} --key FILE`",
                )
                continue
            self._renew(session, role, signer, now)
            done.append(role)
        bins = sorted(r for r in due if r.startswith(BINS_PREFIX))
        changed = self._bump_bins(session, bins, now)
        done.extend(bins)
        if "targets" in done:
            changed["targets.json"] = self._targets_metafile(session)
        snapshot = None
        if changed or "snapshot" in due:
            snapshot = self._bump_snapshot(session, changed, now)
            done.append("snapshot")
        if snapshot is not None or "timestamp" in due:
            self._bump_timestamp(session, snapshot, now)
            done.append("timestamp")
        if done:
            log.info("tuf.refreshed", roles=done)
        return done

    def _due(self, expiries: dict[str, tuple[int, datetime]], now: datetime) -> bool:
        for role, (_, expires) in expiries.items():
            if not self._is_due(role, expires, now):
                continue
            if role in ("root", "targets") and not self.key_path(role).exists():
                continue  # offline: nothing this process can do (warned when locked)
            return True
        return False

    def _is_due(self, role: str, expires: datetime, now: datetime) -> bool:
        return expires - now < self.config.lifetime(role) / 2

    def _targets_metafile(self, session: Session) -> MetaFile:
        row = self._latest_row(session, "targets")
        assert row is not None
        return _metafile(row.version, row.body)

    def _renew(self, session: Session, role: str, signer: Signer, now: datetime) -> None:
        if role == "root":
            root = self.root(session).signed
            self._check_signer(root, "root", signer)
            self._new_version(session, "root", root, signer, now)
        else:
            targets = self._latest(session, "targets", Targets).signed
            self._check_signer(self.root(session).signed, "targets", signer)
            self._new_version(session, "targets", targets, signer, now)

    @staticmethod
    def _check_signer(root: Root, role: str, signer: Signer) -> None:
        if signer.public_key.keyid not in root.roles[role].keyids:
            raise TufStateError.single(
                f"this key is not a {role} key of the repository",
                location=role,
                hint=f"use the {role} key made at bootstrap (or its rotated successor)",
            )

    def renew(self, role: str, signer: Signer) -> int:
        """Re-sign ``root`` or ``targets`` with ``signer`` (the offline procedure); bump
        snapshot and timestamp as needed. Returns the new version."""
        if role not in ("root", "targets"):
            raise TufStateError.single(
                f"{role} is an online role; it is re-signed automatically",
                location="role",
                hint="renew root or targets",
            )
        with session_scope(self.sessions) as session:
            self._lock(session)
            now = self.clock()
            self._renew(session, role, signer, now)
            if role == "targets":
                snapshot = self._bump_snapshot(
                    session, {"targets.json": self._targets_metafile(session)}, now
                )
                self._bump_timestamp(session, snapshot, now)
            row = self._latest_row(session, role)
            assert row is not None
            return row.version

    def rotate(self, role: str, signer: Signer, new_key: Signer) -> int:
        """Replace the key of an online role (``timestamp``, ``snapshot``: signed by root;
        ``bins``: by targets) with ``new_key``; returns the new root/targets version."""
        with session_scope(self.sessions) as session:
            self._lock(session)
            now = self.clock()
            if role in ("timestamp", "snapshot"):
                root = self.root(session).signed
                self._check_signer(root, "root", signer)
                for keyid in list(root.roles[role].keyids):
                    root.revoke_key(keyid, role)
                root.add_key(new_key.public_key, role)
                self._new_version(session, "root", root, signer, now)
                version = root.version
            elif role == "bins":
                targets = self._latest(session, "targets", Targets).signed
                self._check_signer(self.root(session).signed, "targets", signer)
                delegations = targets.delegations
                assert delegations is not None and delegations.succinct_roles is not None
                for keyid in list(delegations.succinct_roles.keyids):
                    targets.revoke_key(keyid)
                targets.add_key(new_key.public_key)
                self._new_version(session, "targets", targets, signer, now)
                version = targets.version
            else:
                raise TufStateError.single(
                    f"{role} is not an online role",
                    location="role",
                    hint="rotate timestamp, snapshot or bins",
                )
            with self._signer_lock:
                self._signers[role] = new_key
            names = list(self._succinct(session).get_roles()) if role == "bins" else []
            changed = self._bump_bins(session, names, now)
            if role == "bins":
                changed["targets.json"] = self._targets_metafile(session)
            snapshot = self._bump_snapshot(session, changed, now)
            self._bump_timestamp(session, snapshot, now)
            return version

    # -- for operators ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with session_scope(self.sessions) as session:
            expiries = self.expiries(session)
            targets = session.scalar(select(func.count()).select_from(TufTarget)) or 0
        offline = {role: self.key_path(role).exists() for role in ("root", "targets")}
        return {
            "roles": {
                role: {"version": version, "expires": expires.isoformat()}
                for role, (version, expires) in sorted(expiries.items())
            },
            "targets": targets,
            "key_dir": str(self.config.resolved_key_dir(self.settings)),
            "offline_keys_present": offline,
        }
