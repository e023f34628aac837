"""The app's persistent key-value state, one store per organization (standard library only).

Needs the ``state`` permission (declared in ``app.toml`` and granted by the
organization's admin). Keys are text up to 256 bytes, values any JSON up to 256 KiB
(:mod:`apprt.sdk.limits`); every write gives the key a new *version*, a number that
only grows, for compare-and-set::

    from apprt.sdk import state

    state.put("settings", {"theme": "dark"})
    state.get("settings")                        # {"theme": "dark"}
    state.get("missing", default={})             # {}
    n = state.increment("visits")                # atomic: 1, 2, 3...

    entry = state.get_entry("doc")               # value and version, or None
    try:
        state.compare_and_set("doc", entry.version if entry else 0, new_doc)
    except state.Conflict:
        ...                                       # written meanwhile: read again, retry

    page = state.list("notes/", limit=100)       # keys in order; page.next for more
    for entry in state.items("notes/"): ...      # every page
    state.delete("settings")

Which organization: an *isolated* app's instance serves one organization and its
calls act for it. A *shared*-tenancy app acts for the organization of the request it
is handling: call :func:`apprt.sdk.identity.current` on the request first (the state
calls made while handling it then forward the caller's signed identity), or pass
``caller=`` explicitly. A shared app calling without a caller is refused.

In ``async`` code use :class:`AsyncStateClient` (same methods, awaitable); the
module-level functions block for the round trip to the platform (about a
millisecond). Outside the platform (an app's own tests) give a client a
:class:`LocalTransport`, an in-process stand-in with the same rules::

    store = state.StateClient(state.LocalTransport())

Refusals raise :class:`PermissionDenied`, :class:`QuotaExceeded`, :class:`RateLimited`
(``retry_after``), :class:`Conflict` (``current_version``), :class:`InvalidRequest`
or :class:`PlatformUnavailable`, each saying what went wrong and how to fix it.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from apprt.sdk import _wire
from apprt.sdk import identity as _identity
from apprt.sdk.errors import (
    Conflict,
    InvalidRequest,
    PermissionDenied,
    PlatformError,
    PlatformUnavailable,
    QuotaExceeded,
    RateLimited,
)
from apprt.sdk.limits import (
    MAX_LIST_LIMIT,
    LimitError,
    check_int,
    check_key,
    encode_value,
    prefix_successor,
)

__all__ = [
    "AsyncStateClient",
    "Conflict",
    "Entry",
    "InvalidRequest",
    "LocalTransport",
    "Page",
    "PermissionDenied",
    "PlatformError",
    "PlatformUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "SocketTransport",
    "StateClient",
    "Usage",
    "compare_and_set",
    "delete",
    "get",
    "get_entry",
    "increment",
    "items",
    "list",
    "put",
    "usage",
    "use",
    "whoami",
]


@dataclass(frozen=True)
class Entry:
    key: str
    value: Any
    version: int


@dataclass(frozen=True)
class Page:
    items: builtins.list[Entry]
    #: Pass as ``after=`` to get the next page; None when this is the last one.
    next: str | None


@dataclass(frozen=True)
class Usage:
    bytes: int
    keys: int
    max_bytes: int
    max_keys: int


# -- transports -----------------------------------------------------------------------


class Transport(Protocol):
    """Carries one operation to the state store (the platform, or a local stand-in)."""

    def call(
        self, op: str, payload: dict[str, Any], caller: _identity.Identity | None
    ) -> dict[str, Any]: ...

    async def acall(
        self, op: str, payload: dict[str, Any], caller: _identity.Identity | None
    ) -> dict[str, Any]: ...


def _caller_headers(caller: _identity.Identity | None) -> dict[str, str]:
    if caller is None:
        return {}
    if caller.proof is None:
        raise InvalidRequest(
            "caller has no signature to forward",
            problems=[
                {
                    "reason": "the caller was not verified from a request",
                    "location": "caller",
                    "hint": "pass the Identity returned by identity.current(request)",
                }
            ],
        )
    return {_identity.CALLER_HEADER: caller.proof.encode()}


class SocketTransport:
    """The platform API on its Unix socket (default ``$APPRT_PLATFORM_SOCKET``)."""

    def __init__(self, path: str | None = None, *, timeout: float = _wire.DEFAULT_TIMEOUT_S):
        self.path = path or _wire.socket_path_from_env()
        self.timeout = timeout

    def call(
        self, op: str, payload: dict[str, Any], caller: _identity.Identity | None
    ) -> dict[str, Any]:
        return _wire.call(self.path, op, payload, _caller_headers(caller), self.timeout)

    async def acall(
        self, op: str, payload: dict[str, Any], caller: _identity.Identity | None
    ) -> dict[str, Any]:
        return await _wire.acall(self.path, op, payload, _caller_headers(caller), self.timeout)


_ORG_FILE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class LocalTransport:
    """An in-process stand-in for the platform's state service, for tests and development.

    Same rules as the platform (keys, values, versions, compare-and-set, quotas when
    given). ``directory``: keep each organization's state in
    ``<directory>/state-<org>.json`` (written atomically); None: in memory only. The
    organization is the caller's, else ``$APPRT_ORG``, else ``"local"``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        max_keys: int = 100_000,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_bytes, self.max_keys = max_bytes, max_keys
        self._orgs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _org(self, caller: _identity.Identity | None) -> str:
        org = caller.org if caller is not None else os.environ.get("APPRT_ORG") or "local"
        if not _ORG_FILE_RE.match(org):
            raise InvalidRequest(f"organization {org!r} is not a valid organization slug")
        return org

    def _load(self, org: str) -> dict[str, Any]:
        store = self._orgs.get(org)
        if store is None:
            store = {"seq": 0, "entries": {}}
            if self.directory is not None:
                path = self.directory / f"state-{org}.json"
                if path.exists():
                    store = json.loads(path.read_text(encoding="utf-8"))
            self._orgs[org] = store
        return store

    def _save(self, org: str, store: dict[str, Any]) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(store, fh, ensure_ascii=False)
            Path(tmp).replace(self.directory / f"state-{org}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise

    def call(
        self, op: str, payload: dict[str, Any], caller: _identity.Identity | None
    ) -> dict[str, Any]:
        with self._lock:
            org = self._org(caller)
            store = self._load(org)
            entries: dict[str, builtins.list[Any]] = store["entries"]  # key -> [json, version]
            if op == "state/get":
                found = entries.get(payload["key"])
                if found is None:
                    return {"key": payload["key"], "found": False, "value": None, "version": 0}
                return {
                    "key": payload["key"],
                    "found": True,
                    "value": json.loads(found[0]),
                    "version": found[1],
                }
            if op == "state/list":
                return self._list(entries, payload)
            if op == "state/usage":
                used = sum(len(k.encode()) + len(v[0].encode()) for k, v in entries.items())
                return {
                    "bytes": used,
                    "keys": len(entries),
                    "max_bytes": self.max_bytes,
                    "max_keys": self.max_keys,
                }
            if op == "whoami":
                return {"org": org, "app_id": os.environ.get("APPRT_APP_ID", ""), "local": True}
            result = self._write(entries, store, op, payload)
            self._save(org, store)
            return result

    async def acall(
        self, op: str, payload: dict[str, Any], caller: _identity.Identity | None
    ) -> dict[str, Any]:
        return self.call(op, payload, caller)

    @staticmethod
    def _list(entries: dict[str, builtins.list[Any]], payload: dict[str, Any]) -> dict[str, Any]:
        prefix, after, limit = payload["prefix"], payload.get("after"), payload["limit"]
        upper = prefix_successor(prefix)
        keys = sorted(
            k
            for k in entries
            if k.startswith(prefix)
            and (after is None or k > after)
            and (upper is None or k < upper)
        )
        page = keys[:limit]
        items = [
            {"key": k, "value": json.loads(entries[k][0]), "version": entries[k][1]} for k in page
        ]
        return {"items": items, "next": page[-1] if len(keys) > limit else None}

    def _write(
        self,
        entries: dict[str, builtins.list[Any]],
        store: dict[str, Any],
        op: str,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        key = payload["key"]
        current = entries.get(key)
        version = current[1] if current is not None else 0
        expected = payload.get("if_version")
        if expected is not None and expected != version:
            raise Conflict(
                f"{key!r} is at version {version}, not {expected}", current_version=version
            )
        if op == "state/delete":
            store["seq"] += 1
            if current is None:
                return {"key": key, "deleted": False}
            del entries[key]
            return {"key": key, "deleted": True}
        if op == "state/increment":
            old = json.loads(current[0]) if current is not None else 0
            if isinstance(old, bool) or not isinstance(old, int):
                raise Conflict(f"{key!r} holds a {type(old).__name__}, not an integer")
            try:
                value = check_int(old + payload["by"], field="result")
            except LimitError as exc:
                raise Conflict(str(exc)) from None
            text = encode_value(value)
        elif op == "state/put":
            value = payload["value"]
            text = encode_value(value)
        else:
            raise InvalidRequest(f"unknown operation {op!r}")
        used = sum(len(k.encode()) + len(v[0].encode()) for k, v in entries.items())
        old_size = len(key.encode()) + len(current[0].encode()) if current is not None else 0
        new_bytes = used - old_size + len(key.encode()) + len(text.encode())
        new_keys = len(entries) + (0 if current is not None else 1)
        if (new_bytes > self.max_bytes and new_bytes > used) or (
            new_keys > self.max_keys and new_keys > len(entries)
        ):
            raise QuotaExceeded(
                f"writing {key!r} would use {new_bytes} bytes in {new_keys} keys, more than "
                f"the quota ({self.max_bytes} bytes, {self.max_keys} keys)"
            )
        store["seq"] += 1
        entries[key] = [text, store["seq"]]
        result: dict[str, Any] = {"key": key, "version": store["seq"]}
        if op == "state/increment":
            result["value"] = value
        return result


# -- clients ------------------------------------------------------------------------


def _invalid(exc: LimitError) -> InvalidRequest:
    return InvalidRequest(
        str(exc),
        problems=[{"reason": str(exc), "location": exc.field, "hint": exc.hint}],
    )


def _check_key(key: object) -> str:
    try:
        return check_key(key)
    except LimitError as exc:
        raise _invalid(exc) from None


def _check_version(value: object, field: str) -> int:
    try:
        version = check_int(value, field=field)
    except LimitError as exc:
        raise _invalid(exc) from None
    if version < 0:
        raise InvalidRequest(f"{field} must be 0 (absent) or a version from the platform")
    return version


def _requests(op: str, *args: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Validate an operation's arguments; the wire operation and payload."""
    try:
        if op == "get":
            return "state/get", {"key": _check_key(args[0])}
        if op == "put":
            key, value, if_version = args
            encode_value(value)
            payload: dict[str, Any] = {"key": _check_key(key), "value": value}
            if if_version is not None:
                payload["if_version"] = _check_version(if_version, "if_version")
            return "state/put", payload
        if op == "delete":
            key, if_version = args
            payload = {"key": _check_key(key)}
            if if_version is not None:
                payload["if_version"] = _check_version(if_version, "if_version")
            return "state/delete", payload
        if op == "increment":
            key, by = args
            return "state/increment", {"key": _check_key(key), "by": check_int(by, field="by")}
        if op == "list":
            prefix, after, limit = args
            check_key(prefix, field="prefix", allow_empty=True)
            if after is not None:
                check_key(after, field="after")
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise LimitError("limit must be an integer", field="limit")
            if not 1 <= limit <= MAX_LIST_LIMIT:
                raise LimitError(
                    f"limit must be from 1 to {MAX_LIST_LIMIT}",
                    field="limit",
                    hint="follow page.next for more",
                )
            return "state/list", {"prefix": prefix, "after": after, "limit": limit}
    except LimitError as exc:
        raise _invalid(exc) from None
    raise ValueError(op)


def _entry(data: dict[str, Any]) -> Entry:
    return Entry(key=str(data["key"]), value=data.get("value"), version=int(data["version"]))


def _page(data: dict[str, Any]) -> Page:
    nxt = data.get("next")
    return Page(items=[_entry(i) for i in data.get("items", [])], next=str(nxt) if nxt else None)


def _who(caller: _identity.Identity | None) -> _identity.Identity | None:
    return caller if caller is not None else _identity.active()


class StateClient:
    """Blocking state calls (each a round trip to the platform)."""

    def __init__(self, transport: Transport | None = None) -> None:
        self.transport: Transport = transport if transport is not None else SocketTransport()

    def _call(self, op: str, payload: dict[str, Any], caller: Any) -> dict[str, Any]:
        return self.transport.call(op, payload, _who(caller))

    def get_entry(self, key: str, *, caller: _identity.Identity | None = None) -> Entry | None:
        """The value and version of ``key``, or None when it is absent."""
        data = self._call(*_requests("get", key), caller)
        return _entry(data) if data.get("found") else None

    def get(
        self, key: str, default: Any = None, *, caller: _identity.Identity | None = None
    ) -> Any:
        """The value of ``key``, or ``default`` when it is absent."""
        entry = self.get_entry(key, caller=caller)
        return default if entry is None else entry.value

    def put(
        self,
        key: str,
        value: Any,
        *,
        if_version: int | None = None,
        caller: _identity.Identity | None = None,
    ) -> int:
        """Store ``value`` at ``key``; its new version. ``if_version``: only if the key is
        at that version now (0: only if absent), else :class:`Conflict`."""
        return int(self._call(*_requests("put", key, value, if_version), caller)["version"])

    def compare_and_set(
        self,
        key: str,
        expected_version: int,
        value: Any,
        *,
        caller: _identity.Identity | None = None,
    ) -> int:
        """Store ``value`` only if ``key`` is at ``expected_version`` (0: absent); the new
        version, or :class:`Conflict` with ``current_version``."""
        return self.put(key, value, if_version=expected_version, caller=caller)

    def delete(
        self,
        key: str,
        *,
        if_version: int | None = None,
        caller: _identity.Identity | None = None,
    ) -> bool:
        """Remove ``key``; False when it was absent."""
        return bool(self._call(*_requests("delete", key, if_version), caller)["deleted"])

    def increment(self, key: str, by: int = 1, *, caller: _identity.Identity | None = None) -> int:
        """Add ``by`` to the integer at ``key`` (absent counts as 0) atomically; the result."""
        return int(self._call(*_requests("increment", key, by), caller)["value"])

    def list(
        self,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
        caller: _identity.Identity | None = None,
    ) -> Page:
        """Entries whose keys start with ``prefix``, in key order, after ``after``."""
        return _page(self._call(*_requests("list", prefix, after, limit), caller))

    def items(
        self, prefix: str = "", *, caller: _identity.Identity | None = None, page_size: int = 100
    ) -> Iterator[Entry]:
        """Every entry under ``prefix``, page after page."""
        after: str | None = None
        who = _who(caller)
        while True:
            page = self.list(prefix, after=after, limit=page_size, caller=who)
            yield from page.items
            if page.next is None:
                return
            after = page.next

    def usage(self, *, caller: _identity.Identity | None = None) -> Usage:
        """Bytes and keys used by the organization's state, and the quota."""
        data = self._call("state/usage", {}, caller)
        return Usage(
            bytes=int(data["bytes"]),
            keys=int(data["keys"]),
            max_bytes=int(data["max_bytes"]),
            max_keys=int(data["max_keys"]),
        )

    def whoami(self, *, caller: _identity.Identity | None = None) -> dict[str, Any]:
        """What the platform knows of this instance: app, version, organization..."""
        return self._call("whoami", {}, caller)


class AsyncStateClient:
    """The same calls as :class:`StateClient`, for ``async`` code."""

    def __init__(self, transport: Transport | None = None) -> None:
        self.transport: Transport = transport if transport is not None else SocketTransport()

    async def _call(self, op: str, payload: dict[str, Any], caller: Any) -> dict[str, Any]:
        return await self.transport.acall(op, payload, _who(caller))

    async def get_entry(
        self, key: str, *, caller: _identity.Identity | None = None
    ) -> Entry | None:
        data = await self._call(*_requests("get", key), caller)
        return _entry(data) if data.get("found") else None

    async def get(
        self, key: str, default: Any = None, *, caller: _identity.Identity | None = None
    ) -> Any:
        entry = await self.get_entry(key, caller=caller)
        return default if entry is None else entry.value

    async def put(
        self,
        key: str,
        value: Any,
        *,
        if_version: int | None = None,
        caller: _identity.Identity | None = None,
    ) -> int:
        data = await self._call(*_requests("put", key, value, if_version), caller)
        return int(data["version"])

    async def compare_and_set(
        self,
        key: str,
        expected_version: int,
        value: Any,
        *,
        caller: _identity.Identity | None = None,
    ) -> int:
        return await self.put(key, value, if_version=expected_version, caller=caller)

    async def delete(
        self,
        key: str,
        *,
        if_version: int | None = None,
        caller: _identity.Identity | None = None,
    ) -> bool:
        return bool((await self._call(*_requests("delete", key, if_version), caller))["deleted"])

    async def increment(
        self, key: str, by: int = 1, *, caller: _identity.Identity | None = None
    ) -> int:
        return int((await self._call(*_requests("increment", key, by), caller))["value"])

    async def list(
        self,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
        caller: _identity.Identity | None = None,
    ) -> Page:
        return _page(await self._call(*_requests("list", prefix, after, limit), caller))

    async def items(
        self, prefix: str = "", *, caller: _identity.Identity | None = None, page_size: int = 100
    ) -> AsyncIterator[Entry]:
        after: str | None = None
        who = _who(caller)
        while True:
            page = await self.list(prefix, after=after, limit=page_size, caller=who)
            for entry in page.items:
                yield entry
            if page.next is None:
                return
            after = page.next

    async def usage(self, *, caller: _identity.Identity | None = None) -> Usage:
        data = await self._call("state/usage", {}, caller)
        return Usage(
            bytes=int(data["bytes"]),
            keys=int(data["keys"]),
            max_bytes=int(data["max_bytes"]),
            max_keys=int(data["max_keys"]),
        )

    async def whoami(self, *, caller: _identity.Identity | None = None) -> dict[str, Any]:
        return await self._call("whoami", {}, caller)


# -- module-level functions: a default blocking client ---------------------------------

_default: StateClient | None = None
_default_lock = threading.Lock()


def _client() -> StateClient:
    global _default
    with _default_lock:
        if _default is None:
            _default = StateClient()
        return _default


def use(transport: Transport | None) -> None:
    """Make the module-level functions use ``transport`` (None: the platform again)."""
    global _default
    with _default_lock:
        _default = StateClient(transport) if transport is not None else None


def get(key: str, default: Any = None, *, caller: _identity.Identity | None = None) -> Any:
    return _client().get(key, default, caller=caller)


def get_entry(key: str, *, caller: _identity.Identity | None = None) -> Entry | None:
    return _client().get_entry(key, caller=caller)


def put(
    key: str,
    value: Any,
    *,
    if_version: int | None = None,
    caller: _identity.Identity | None = None,
) -> int:
    return _client().put(key, value, if_version=if_version, caller=caller)


def compare_and_set(
    key: str, expected_version: int, value: Any, *, caller: _identity.Identity | None = None
) -> int:
    return _client().compare_and_set(key, expected_version, value, caller=caller)


def delete(
    key: str, *, if_version: int | None = None, caller: _identity.Identity | None = None
) -> bool:
    return _client().delete(key, if_version=if_version, caller=caller)


def increment(key: str, by: int = 1, *, caller: _identity.Identity | None = None) -> int:
    return _client().increment(key, by, caller=caller)


def list(  # the SDK's name for it (shadows the builtin in this module)
    prefix: str = "",
    *,
    after: str | None = None,
    limit: int = 100,
    caller: _identity.Identity | None = None,
) -> Page:
    return _client().list(prefix, after=after, limit=limit, caller=caller)


def items(prefix: str = "", *, caller: _identity.Identity | None = None) -> Iterator[Entry]:
    return _client().items(prefix, caller=caller)


def usage(*, caller: _identity.Identity | None = None) -> Usage:
    return _client().usage(caller=caller)


def whoami(*, caller: _identity.Identity | None = None) -> dict[str, Any]:
    return _client().whoami(caller=caller)
