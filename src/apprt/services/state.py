"""Persistent key-value state per app and organization: the service behind ``state``.

Functions take a SQLAlchemy session and leave the transaction to the caller (the
platform API commits one per call; the install engine may fold an export into a job
step). Keys and values follow :mod:`apprt.sdk.limits` (text keys up to 256 bytes, JSON
values up to 256 KiB)::

    quota = Quota.for_storage_mb(manifest.resources.storage_mb, settings)
    entry = put(session, "acme", "com.example.notes", "n/1", {"text": "hi"}, quota=quota)
    get(session, "acme", "com.example.notes", "n/1")        # Entry(key, value, version)
    put(..., if_version=entry.version)                       # compare-and-set
    increment(session, "acme", app_id, "seq", 1, quota=quota)
    list_entries(session, "acme", app_id, "n/", after=None, limit=100)
    delete(session, "acme", app_id, "n/1")

    data = export_state(session, "acme", app_id)             # for backups, uninstall
    import_state(session, "acme", app_id, data)              # replaces the whole state
    delete_all(session, "acme", app_id)                      # uninstall with purge

**Atomicity.** Every write first updates the app+org's :class:`StateUsage` row. On
SQLite that takes the database's write lock before anything is read; on PostgreSQL it
locks the row. Writers of one app+org therefore go one at a time, and what a write
reads (the key's version, the usage) cannot change before it commits: compare-and-set,
``increment`` and the quota check are atomic.

**Versions** come from the usage row's ``seq``, which grows with every write of the
app+org (deletes included) and is never reused, so a version seen before a delete
never matches a key written after it (no ABA).

**Quotas**: bytes (key + compact JSON value, UTF-8) and keys per app+org. A write that
would end above either limit *and* above the current usage is refused
(:class:`~apprt.services.errors.QuotaExceededError`); writes that shrink usage always
pass, so an app over its quota (e.g. after a restore) can clean up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete as sa_delete
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from apprt.db.base import utcnow
from apprt.errors import Problem
from apprt.sdk.limits import (
    MAX_LIST_LIMIT,
    LimitError,
    check_int,
    check_key,
    encode_value,
    prefix_successor,
)
from apprt.services.errors import (
    InvalidStateRequestError,
    NotAnIntegerError,
    QuotaExceededError,
    StateConflictError,
)
from apprt.services.models import StateEntry, StateUsage
from apprt.settings import Settings

MIB = 1024 * 1024
EXPORT_FORMAT = "apprt.state.v1"


@dataclass(frozen=True)
class Quota:
    max_bytes: int
    max_keys: int

    @classmethod
    def for_storage_mb(cls, storage_mb: int, settings: Settings) -> Quota:
        """The manifest's ``resources.storage_mb`` (the platform default when it is 0)."""
        mb = storage_mb if storage_mb > 0 else settings.state_default_storage_mb
        return cls(max_bytes=mb * MIB, max_keys=settings.state_max_keys)


@dataclass(frozen=True)
class Entry:
    key: str
    value: Any
    version: int
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "version": self.version}


@dataclass(frozen=True)
class Page:
    items: list[Entry]
    next: str | None


@dataclass(frozen=True)
class Usage:
    bytes: int
    keys: int
    max_bytes: int
    max_keys: int

    def as_dict(self) -> dict[str, int]:
        return {
            "bytes": self.bytes,
            "keys": self.keys,
            "max_bytes": self.max_bytes,
            "max_keys": self.max_keys,
        }


# -- validation ---------------------------------------------------------------------


def _invalid(exc: LimitError) -> InvalidStateRequestError:
    return InvalidStateRequestError([Problem(str(exc), location=exc.field, hint=exc.hint)])


def valid_key(key: object, *, field: str = "key") -> str:
    try:
        return check_key(key, field=field)
    except LimitError as exc:
        raise _invalid(exc) from None


def _encode(value: object) -> str:
    try:
        return encode_value(value)
    except LimitError as exc:
        raise _invalid(exc) from None


def _size(key: str, text: str) -> int:
    return len(key.encode("utf-8")) + len(text.encode("utf-8"))


# -- reads --------------------------------------------------------------------------


def _row(session: Session, org: str, app_id: str, key: str) -> StateEntry | None:
    return session.get(StateEntry, (org, app_id, key), populate_existing=True)


def get(session: Session, org: str, app_id: str, key: str) -> Entry | None:
    """The entry at ``key``, or None."""
    row = _row(session, org, app_id, valid_key(key))
    if row is None:
        return None
    return Entry(row.key, json.loads(row.value), row.version, row.updated_at)


def list_entries(
    session: Session,
    org: str,
    app_id: str,
    prefix: str = "",
    *,
    after: str | None = None,
    limit: int = 100,
) -> Page:
    """Entries whose keys start with ``prefix``, in key (code point) order, after ``after``."""
    if prefix:
        valid_key(prefix, field="prefix")
    if after is not None:
        valid_key(after, field="after")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidStateRequestError.one(
            f"limit must be an integer from 1 to {MAX_LIST_LIMIT}",
            location="limit",
            hint="ask for fewer and follow `next`",
        )
    query = select(StateEntry).where(StateEntry.org == org, StateEntry.app_id == app_id)
    if prefix:
        query = query.where(StateEntry.key >= prefix)
        upper = prefix_successor(prefix)
        if upper is not None:
            query = query.where(StateEntry.key < upper)
    if after is not None:
        query = query.where(StateEntry.key > after)
    rows = list(session.scalars(query.order_by(StateEntry.key).limit(limit + 1)))
    # belt and braces: a backend collation that is not byte-wise must not widen the range
    rows = [r for r in rows if r.key.startswith(prefix)]
    page = rows[:limit]
    items = [Entry(r.key, json.loads(r.value), r.version, r.updated_at) for r in page]
    return Page(items, page[-1].key if len(rows) > limit else None)


def usage(session: Session, org: str, app_id: str, quota: Quota) -> Usage:
    row = session.get(StateUsage, (org, app_id), populate_existing=True)
    used, keys = (row.bytes, row.keys) if row is not None else (0, 0)
    return Usage(used, keys, quota.max_bytes, quota.max_keys)


# -- writes -------------------------------------------------------------------------


def _lock(session: Session, org: str, app_id: str) -> StateUsage:
    """The app+org's usage row, updated first so that this transaction is the only writer
    of the app+org's state until it ends (see the module's docstring)."""
    result = session.execute(
        update(StateUsage)
        .where(StateUsage.org == org, StateUsage.app_id == app_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) == 0:
        session.add(StateUsage(org=org, app_id=app_id, bytes=0, keys=0, seq=0))
        session.flush()
    row = session.get(StateUsage, (org, app_id), populate_existing=True)
    assert row is not None
    return row


def _check_version(key: str, current: StateEntry | None, expected: int | None) -> None:
    if expected is None:
        return
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise InvalidStateRequestError.one(
            "if_version must be 0 (absent) or a version number",
            location="if_version",
            hint="pass the version a read returned",
        )
    version = current.version if current is not None else 0
    if version != expected:
        now = f"at version {version}" if version else "absent"
        raise StateConflictError.one(
            f"{key!r} is {now}, not at version {expected}",
            location="if_version",
            hint="read the key again and retry with its current version",
            extra={"current_version": version},
        )


def _write(
    session: Session,
    org: str,
    app_id: str,
    key: str,
    text: str,
    lock: StateUsage,
    current: StateEntry | None,
    quota: Quota,
) -> StateEntry:
    size = _size(key, text)
    new_bytes = lock.bytes - (current.size if current is not None else 0) + size
    new_keys = lock.keys + (0 if current is not None else 1)
    over_bytes = new_bytes > quota.max_bytes and new_bytes > lock.bytes
    over_keys = new_keys > quota.max_keys and new_keys > lock.keys
    if over_bytes or over_keys:
        what = (
            f"{new_bytes} bytes, more than the {quota.max_bytes} allowed"
            if over_bytes
            else f"{new_keys} keys, more than the {quota.max_keys} allowed"
        )
        raise QuotaExceededError.one(
            f"writing {key!r} would take the state of {app_id} in {org} to {what}",
            location="state",
            hint="delete keys you no longer need, or raise resources.storage_mb in app.toml "
            "(keys: ask the platform operator)",
            extra={
                "bytes": lock.bytes,
                "keys": lock.keys,
                "max_bytes": quota.max_bytes,
                "max_keys": quota.max_keys,
            },
        )
    lock.seq += 1
    lock.bytes, lock.keys = new_bytes, new_keys
    now = utcnow()
    if current is None:
        current = StateEntry(
            org=org, app_id=app_id, key=key, value=text, size=size, version=lock.seq, updated_at=now
        )
        session.add(current)
    else:
        current.value, current.size, current.version, current.updated_at = (
            text,
            size,
            lock.seq,
            now,
        )
    session.flush()
    return current


def put(
    session: Session,
    org: str,
    app_id: str,
    key: str,
    value: Any,
    *,
    quota: Quota,
    if_version: int | None = None,
) -> Entry:
    """Store ``value`` at ``key``. ``if_version``: only if the key is at that version now
    (0: only if absent), else :class:`StateConflictError`."""
    key = valid_key(key)
    text = _encode(value)
    lock = _lock(session, org, app_id)
    current = _row(session, org, app_id, key)
    _check_version(key, current, if_version)
    row = _write(session, org, app_id, key, text, lock, current, quota)
    return Entry(key, value, row.version, row.updated_at)


def compare_and_set(
    session: Session,
    org: str,
    app_id: str,
    key: str,
    expected_version: int,
    value: Any,
    *,
    quota: Quota,
) -> Entry:
    return put(session, org, app_id, key, value, quota=quota, if_version=expected_version)


def increment(
    session: Session, org: str, app_id: str, key: str, by: int = 1, *, quota: Quota
) -> Entry:
    """Add ``by`` to the integer at ``key`` (absent: 0), atomically; the new entry."""
    key = valid_key(key)
    try:
        by = check_int(by, field="by")
    except LimitError as exc:
        raise _invalid(exc) from None
    lock = _lock(session, org, app_id)
    current = _row(session, org, app_id, key)
    old: Any = json.loads(current.value) if current is not None else 0
    if isinstance(old, bool) or not isinstance(old, int):
        raise NotAnIntegerError.one(
            f"{key!r} holds a {type(old).__name__}, not an integer",
            location="key",
            hint="increment only keys holding integers; put() a number first",
            extra={"current_version": current.version if current is not None else 0},
        )
    try:
        value = check_int(old + by, field="result")
    except LimitError:
        raise NotAnIntegerError.one(
            f"incrementing {key!r} by {by} leaves the signed 64-bit range",
            location="by",
            hint="keep counters within ±2**63",
        ) from None
    row = _write(session, org, app_id, key, _encode(value), lock, current, quota)
    return Entry(key, value, row.version, row.updated_at)


def delete(
    session: Session, org: str, app_id: str, key: str, *, if_version: int | None = None
) -> bool:
    """Remove ``key``; False when it was absent."""
    key = valid_key(key)
    lock = _lock(session, org, app_id)
    current = _row(session, org, app_id, key)
    _check_version(key, current, if_version)
    lock.seq += 1
    if current is None:
        return False
    lock.bytes -= current.size
    lock.keys -= 1
    session.delete(current)
    session.flush()
    return True


# -- export, import, purge --------------------------------------------------------------


def iter_entries(session: Session, org: str, app_id: str) -> Iterator[StateEntry]:
    query = (
        select(StateEntry)
        .where(StateEntry.org == org, StateEntry.app_id == app_id)
        .order_by(StateEntry.key)
        .execution_options(yield_per=500)
    )
    yield from session.scalars(query)


def export_state(session: Session, org: str, app_id: str) -> dict[str, Any]:
    """The app's whole state in ``org`` as a JSON-serializable document.

    ``{"format": "apprt.state.v1", "org", "app_id", "exported_at", "bytes", "keys",
    "entries": [{"key", "value", "version"}, ...]}`` in key order; reads in the
    session's transaction, so the document is one consistent snapshot.
    """
    entries = []
    used = 0
    for row in iter_entries(session, org, app_id):
        entries.append({"key": row.key, "value": json.loads(row.value), "version": row.version})
        used += row.size
    return {
        "format": EXPORT_FORMAT,
        "org": org,
        "app_id": app_id,
        "exported_at": utcnow().isoformat(),
        "bytes": used,
        "keys": len(entries),
        "entries": entries,
    }


def check_export(data: object) -> list[tuple[str, str, int, int]]:
    """The (key, JSON text, version, size) of an export, or InvalidStateRequestError."""
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise InvalidStateRequestError.one(
            f"not an apprt state export (format must be {EXPORT_FORMAT!r})",
            location="format",
            hint="restore a file written by `apprt backup` or export_state()",
        )
    raw = data.get("entries")
    if not isinstance(raw, list):
        raise InvalidStateRequestError.one("entries must be a list", location="entries")
    out: list[tuple[str, str, int, int]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"entries[{index}]"
        if not isinstance(item, Mapping) or "key" not in item or "value" not in item:
            raise InvalidStateRequestError.one(
                "each entry needs a key and a value", location=where, hint="fix or drop it"
            )
        try:
            key = check_key(item["key"], field=f"{where}.key")
            text = encode_value(item["value"], field=f"{where}.value")
        except LimitError as exc:
            raise _invalid(exc) from None
        version = item.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidStateRequestError.one(
                "version must be a positive integer", location=f"{where}.version"
            )
        if key in seen:
            raise InvalidStateRequestError.one(
                f"key {key!r} appears twice", location=where, hint="keep one of them"
            )
        seen.add(key)
        out.append((key, text, version, _size(key, text)))
    return out


def import_state(session: Session, org: str, app_id: str, data: Mapping[str, Any]) -> Usage:
    """Replace the app's state in ``org`` with an export (:func:`export_state`).

    Quotas are not applied (it is an admin's restore; an app over its quota can only
    shrink its state afterwards). Versions stay above every version handed out before:
    each restored entry's version is the app+org's last version plus its exported one
    (into an empty, fresh state they are kept as exported).
    """
    entries = check_export(data) if data else []  # {}: an empty state
    lock = _lock(session, org, app_id)
    _forget_entries(session, org, app_id)
    session.execute(
        sa_delete(StateEntry)
        .where(StateEntry.org == org, StateEntry.app_id == app_id)
        .execution_options(synchronize_session=False)
    )
    base = lock.seq
    now = utcnow()
    session.add_all(
        StateEntry(
            org=org,
            app_id=app_id,
            key=key,
            value=text,
            size=size,
            version=base + version,
            updated_at=now,
        )
        for key, text, version, size in entries
    )
    lock.seq = base + max((v for _, _, v, _ in entries), default=0)
    lock.bytes = sum(size for *_, size in entries)
    lock.keys = len(entries)
    session.flush()
    return Usage(lock.bytes, lock.keys, 0, 0)


def _forget_entries(session: Session, org: str, app_id: str, *, usage: bool = False) -> None:
    """Drop the session's copies of the app+org's rows before a bulk delete."""
    for obj in list(session.identity_map.values()):
        if not (isinstance(obj, StateEntry) or (usage and isinstance(obj, StateUsage))):
            continue
        if (getattr(obj, "org", None), getattr(obj, "app_id", None)) == (org, app_id):
            session.expunge(obj)


def delete_all(session: Session, org: str, app_id: str) -> int:
    """Remove the app's whole state in ``org`` (uninstall with purge); the keys removed."""
    session.flush()
    _forget_entries(session, org, app_id, usage=True)
    result = session.execute(
        sa_delete(StateEntry)
        .where(StateEntry.org == org, StateEntry.app_id == app_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa_delete(StateUsage)
        .where(StateUsage.org == org, StateUsage.app_id == app_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def recount(session: Session, org: str, app_id: str) -> Usage:
    """Recompute the usage row from the entries (repair; the tests check it agrees)."""
    lock = _lock(session, org, app_id)
    used, keys = session.execute(
        select(func.coalesce(func.sum(StateEntry.size), 0), func.count()).where(
            StateEntry.org == org, StateEntry.app_id == app_id
        )
    ).one()
    lock.bytes, lock.keys = int(used), int(keys)
    session.flush()
    return Usage(lock.bytes, lock.keys, 0, 0)
