"""The state service: a random history of writes equals a model dict; quotas; CAS; atomicity
under concurrent writers; export/import; the SDK's local stand-in follows the same rules."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.engine import session_scope
from apprt.sdk import state as sdk_state
from apprt.sdk.errors import Conflict, InvalidRequest, QuotaExceeded
from apprt.sdk.limits import MAX_KEY_BYTES, MAX_VALUE_BYTES, check_int, prefix_successor
from apprt.services import state
from apprt.services.errors import (
    InvalidStateRequestError,
    NotAnIntegerError,
    QuotaExceededError,
    StateConflictError,
)
from apprt.services.state import Quota

BIG = Quota(max_bytes=10**9, max_keys=10**6)
_ids = itertools.count()


def fresh(prefix: str = "o") -> str:
    return f"{prefix}{next(_ids)}"


# -- the model ----------------------------------------------------------------------


class Model:
    """What the state of one app+org should be: key -> (value, version), and the sequence."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Any, int]] = {}
        self.seq = 0

    def _check(self, key: str, if_version: int | None) -> None:
        current = self.entries.get(key, (None, 0))[1]
        if if_version is not None and if_version != current:
            raise LookupError("conflict")

    def put(self, key: str, value: Any, if_version: int | None) -> int:
        self._check(key, if_version)
        self.seq += 1
        self.entries[key] = (value, self.seq)
        return self.seq

    def delete(self, key: str, if_version: int | None) -> bool:
        self._check(key, if_version)
        self.seq += 1
        return self.entries.pop(key, None) is not None

    def increment(self, key: str, by: int) -> int:
        old = self.entries.get(key, (0, 0))[0]
        if isinstance(old, bool) or not isinstance(old, int):
            raise LookupError("notint")
        try:
            value = check_int(old + by, field="result")
        except ValueError:
            raise LookupError("notint") from None
        self.seq += 1
        self.entries[key] = (value, self.seq)
        return value

    def get(self, key: str) -> tuple[Any, int] | None:
        return self.entries.get(key)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.entries if k.startswith(prefix))


class Service:
    """The platform's state service, one transaction per call (as the platform API does)."""

    def __init__(self, sessions: sessionmaker[Session], quota: Quota = BIG) -> None:
        self.sessions, self.org, self.app, self.quota = sessions, fresh(), "com.test.app", quota

    def _run(self, fn: Callable[[Session], Any]) -> Any:
        try:
            with session_scope(self.sessions) as session:
                return fn(session)
        except NotAnIntegerError:
            raise LookupError("notint") from None
        except StateConflictError:
            raise LookupError("conflict") from None

    def put(self, key: str, value: Any, if_version: int | None) -> int:
        return int(
            self._run(
                lambda s: (
                    state.put(
                        s, self.org, self.app, key, value, quota=self.quota, if_version=if_version
                    ).version
                )
            )
        )

    def delete(self, key: str, if_version: int | None) -> bool:
        return bool(
            self._run(lambda s: state.delete(s, self.org, self.app, key, if_version=if_version))
        )

    def increment(self, key: str, by: int) -> int:
        return int(
            self._run(
                lambda s: state.increment(s, self.org, self.app, key, by, quota=self.quota).value
            )
        )

    def get(self, key: str) -> tuple[Any, int] | None:
        entry = self._run(lambda s: state.get(s, self.org, self.app, key))
        return None if entry is None else (entry.value, entry.version)

    def keys(self, prefix: str, page: int) -> list[str]:
        out: list[str] = []
        after = None
        while True:
            with session_scope(self.sessions) as session:
                result = state.list_entries(
                    session, self.org, self.app, prefix, after=after, limit=page
                )
            out += [e.key for e in result.items]
            if result.next is None:
                return out
            after = result.next

    def usage(self) -> tuple[int, int]:
        u = self._run(lambda s: state.usage(s, self.org, self.app, self.quota))
        return u.bytes, u.keys


class Local:
    """The SDK's LocalTransport behind a StateClient."""

    def __init__(self) -> None:
        self.client = sdk_state.StateClient(sdk_state.LocalTransport())

    def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Conflict as exc:
            raise LookupError("notint" if "integer" in str(exc) else "conflict") from None

    def put(self, key: str, value: Any, if_version: int | None) -> int:
        return int(self._run(lambda: self.client.put(key, value, if_version=if_version)))

    def delete(self, key: str, if_version: int | None) -> bool:
        return bool(self._run(lambda: self.client.delete(key, if_version=if_version)))

    def increment(self, key: str, by: int) -> int:
        return int(self._run(lambda: self.client.increment(key, by)))

    def get(self, key: str) -> tuple[Any, int] | None:
        entry = self.client.get_entry(key)
        return None if entry is None else (entry.value, entry.version)

    def keys(self, prefix: str, page: int) -> list[str]:
        if page == 0:
            return [e.key for e in self.client.items(prefix)]
        return self._paged(prefix, page)

    def _paged(self, prefix: str, page: int) -> list[str]:
        out: list[str] = []
        after = None
        while True:
            result = self.client.list(prefix, after=after, limit=page)
            out += [e.key for e in result.items]
            if result.next is None:
                return out
            after = result.next


# -- strategies -----------------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(["a", "ab", "a/1", "a/2", "b", "é", "日本", "a\u00ff", "z" * 10]),
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_categories=("Cs", "Cc")),
        min_size=1,
        max_size=4,
    ),
)
PREFIXES = st.sampled_from(["", "a", "a/", "é", "日", "z"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
VERSIONS = st.one_of(st.none(), st.just("current"), st.integers(0, 40))

OPS = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES, VERSIONS),
    st.tuples(st.just("put"), KEYS, st.integers(-50, 50), VERSIONS),
    st.tuples(st.just("delete"), KEYS, VERSIONS),
    st.tuples(st.just("increment"), KEYS, st.integers(-(2**20), 2**20)),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("list"), PREFIXES, st.integers(1, 3)),
)


def _outcome(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except LookupError as exc:
        return ("error", str(exc).strip("'"))


def run_history(store: Any, ops: list[tuple[Any, ...]]) -> Model:
    model = Model()
    for op in ops:
        kind, key = op[0], op[1]
        if kind in ("put", "delete"):
            wanted = op[-1]
            if wanted == "current":
                wanted = model.entries.get(key, (None, 0))[1]
            args = (key, op[2], wanted) if kind == "put" else (key, wanted)
            expected = _outcome(getattr(model, kind), *args)
            got = _outcome(getattr(store, kind), *args)
        elif kind == "increment":
            expected = _outcome(model.increment, key, op[2])
            got = _outcome(store.increment, key, op[2])
        elif kind == "get":
            expected, got = model.get(key), store.get(key)
        else:
            expected, got = model.keys(key), store.keys(key, op[2])
        assert got == expected, (op, got, expected)
    return model


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(OPS, max_size=25))
def test_random_history_equals_the_model(
    sessions: sessionmaker[Session], ops: list[tuple[Any, ...]]
) -> None:
    service = Service(sessions)
    model = run_history(service, ops)
    # every entry as the model says, and the usage row agrees with the entries
    for key, (value, version) in model.entries.items():
        assert service.get(key) == (value, version)
    assert service.keys("", 1000) == sorted(model.entries)
    expected_bytes = sum(
        len(k.encode()) + len(state.encode_value(v).encode()) for k, (v, _) in model.entries.items()
    )
    assert service.usage() == (expected_bytes, len(model.entries))
    with session_scope(sessions) as session:
        recount = state.recount(session, service.org, service.app)
    assert (recount.bytes, recount.keys) == (expected_bytes, len(model.entries))


@settings(max_examples=60, deadline=None)
@given(st.lists(OPS, max_size=25))
def test_the_sdks_local_stand_in_follows_the_same_rules(ops: list[tuple[Any, ...]]) -> None:
    run_history(Local(), ops)


# -- examples -------------------------------------------------------------------------


def test_compare_and_set_and_versions_never_repeat(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions)
    v1 = s.put("doc", {"n": 1}, 0)  # create only if absent
    assert _outcome(lambda: s.put("doc", {"n": 2}, 0)) == ("error", "conflict")
    v2 = s.put("doc", {"n": 2}, v1)
    assert v2 > v1
    assert _outcome(lambda: s.put("doc", {"n": 3}, v1)) == ("error", "conflict")  # stale
    assert s.delete("doc", v2) is True
    v3 = s.put("doc", {"n": 4}, None)
    assert v3 > v2  # no ABA: a version seen before the delete never matches again
    assert _outcome(lambda: s.put("doc", {"n": 5}, v1)) == ("error", "conflict")
    with pytest.raises(StateConflictError) as info, session_scope(sessions) as session:
        state.put(session, s.org, s.app, "doc", 0, quota=BIG, if_version=v2)
    assert info.value.extra["current_version"] == v3
    assert info.value.status_code == 409 and "read the key again" in str(info.value)


def test_increment_counts_and_refuses_non_integers(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions)
    assert [s.increment("n", 1) for _ in range(3)] == [1, 2, 3]
    assert s.increment("n", -10) == -7
    s.put("text", "hello", None)
    assert _outcome(lambda: s.increment("text", 1)) == ("error", "notint")
    s.put("flag", True, None)
    assert _outcome(lambda: s.increment("flag", 1)) == ("error", "notint")  # bool is not int
    s.put("max", 2**63 - 1, None)
    assert _outcome(lambda: s.increment("max", 1)) == ("error", "notint")  # 64-bit overflow


def test_quota_bytes_and_keys(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions, Quota(max_bytes=100, max_keys=3))
    s.put("a", "x" * 40, None)  # 1 + 42 bytes
    s.put("b", "x" * 40, None)  # 86 in all
    with pytest.raises(QuotaExceededError) as info, session_scope(sessions) as session:
        state.put(session, s.org, s.app, "c", "x" * 40, quota=s.quota)
    assert info.value.status_code == 507
    assert "more than the 100 allowed" in str(info.value) and "storage_mb" in str(info.value)
    assert s.usage() == (86, 2)  # the refused write left nothing behind
    s.put("a", "small", None)  # replacing with less always fits
    s.put("c", 1, None)
    with (
        pytest.raises(QuotaExceededError, match="4 keys, more than the 3"),
        session_scope(sessions) as session,
    ):
        state.put(session, s.org, s.app, "d", 1, quota=s.quota)
    with pytest.raises(QuotaExceededError), session_scope(sessions) as session:
        state.increment(session, s.org, s.app, "e", 1, quota=s.quota)
    assert s.delete("c", None) is True
    assert s.increment("e", 1) == 1


def test_over_quota_state_can_only_shrink(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions, Quota(max_bytes=50, max_keys=10))
    with session_scope(sessions) as session:  # a restore does not check quotas
        state.import_state(
            session,
            s.org,
            s.app,
            {"format": state.EXPORT_FORMAT, "entries": [{"key": "k", "value": "x" * 100}]},
        )
    assert s.usage() == (103, 1)
    assert _outcome(lambda: s.put("k", "x" * 90, None))[0] == "ok"  # smaller: allowed
    with pytest.raises(QuotaExceededError), session_scope(sessions) as session:
        state.put(session, s.org, s.app, "k", "x" * 95, quota=s.quota)  # bigger: refused


def test_keys_and_values_are_checked(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions)
    bad: list[tuple[Any, Any, str]] = [
        ("", 1, "empty"),
        ("k" * (MAX_KEY_BYTES + 1), 1, "more than 256"),
        ("é" * 129, 1, "258 bytes"),
        ("a\nb", 1, "control character"),
        (5, 1, "must be a string"),
        ("k", float("nan"), "not JSON"),
        ("k", {1, 2}, "not JSON"),
        ("k", "x" * MAX_VALUE_BYTES, "more than 262144"),
    ]
    for key, value, message in bad:
        with pytest.raises(InvalidStateRequestError, match=message), session_scope(sessions) as ss:
            state.put(ss, s.org, s.app, key, value, quota=BIG)
    s.put("k" * MAX_KEY_BYTES, "x" * (MAX_VALUE_BYTES - 2), None)  # exactly at the limits


def test_list_pages_by_prefix_in_code_point_order(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions)
    keys = ["a", "a/1", "a/2", "a/10", "a0", "b", "é", "é/x", "\U0010ffff", "\U0010ffffz"]
    for k in keys:
        s.put(k, k, None)
    assert s.keys("", 3) == sorted(keys)
    assert s.keys("a/", 1) == ["a/1", "a/10", "a/2"]
    assert s.keys("é", 2) == ["é", "é/x"]
    assert s.keys("\U0010ffff", 1) == ["\U0010ffff", "\U0010ffffz"]
    assert prefix_successor("a/") == "a0"
    assert prefix_successor("\U0010ffff") is None
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\ud7ff") == "\ue000"
    with pytest.raises(InvalidStateRequestError), session_scope(sessions) as session:
        state.list_entries(session, s.org, s.app, "", limit=0)


def test_concurrent_writers_are_atomic(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions)
    s.put("doc", 0, None)
    errors: list[BaseException] = []
    won: list[int] = []

    def bump() -> None:
        try:
            for _ in range(15):
                s.increment("n", 1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def cas() -> None:
        try:
            won.append(s.put("doc", 1, 1))
        except LookupError:
            pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    threads += [threading.Thread(target=cas) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert s.get("n") is not None and s.get("n")[0] == 60  # type: ignore[index]
    assert len(won) == 1  # exactly one compare-and-set from version 1 wins


def test_export_import_round_trip_and_delete_all(sessions: sessionmaker[Session]) -> None:
    s = Service(sessions)
    for k, v in [("a", 1), ("b", {"x": [1, "é"]}), ("c", None)]:
        s.put(k, v, None)
    with session_scope(sessions) as session:
        exported = state.export_state(session, s.org, s.app)
    assert exported["format"] == state.EXPORT_FORMAT and exported["keys"] == 3
    assert [e["key"] for e in exported["entries"]] == ["a", "b", "c"]

    other = Service(sessions)
    with session_scope(sessions) as session:
        state.import_state(session, other.org, other.app, exported)
    with session_scope(sessions) as session:
        again = state.export_state(session, other.org, other.app)
    assert again["entries"] == exported["entries"]  # into a fresh state: versions kept
    assert other.usage() == s.usage()

    seen = max(e["version"] for e in exported["entries"])
    with session_scope(sessions) as session:  # into a used state: versions above all seen
        state.import_state(session, s.org, s.app, exported)
    assert min(v for _, v in (s.get(k) for k in "abc")) > seen  # type: ignore[misc]

    with session_scope(sessions) as session:
        assert state.delete_all(session, s.org, s.app) == 3
    assert s.usage() == (0, 0) and s.keys("", 10) == []
    with session_scope(sessions) as session:
        state.import_state(session, s.org, s.app, {})  # {}: empty
    for bad, message in [
        ({"format": "x"}, "not an apprt state export"),
        ({"format": state.EXPORT_FORMAT, "entries": [{"key": "a"}]}, "needs a key and a value"),
        (
            {"format": state.EXPORT_FORMAT, "entries": [{"key": "a", "value": 1}] * 2},
            "appears twice",
        ),
    ]:
        with pytest.raises(InvalidStateRequestError, match=message):
            state.check_export(bad)


def test_organizations_and_apps_do_not_see_each_other(sessions: sessionmaker[Session]) -> None:
    a, b = Service(sessions), Service(sessions)
    c = Service(sessions)
    c.org, c.app = a.org, "com.test.other"
    a.put("secret", "a's", None)
    assert b.get("secret") is None and b.keys("", 10) == []
    assert c.get("secret") is None and c.keys("", 10) == []


def test_sdk_validates_before_calling_the_platform() -> None:
    client = sdk_state.StateClient(sdk_state.LocalTransport(max_bytes=10))
    with pytest.raises(InvalidRequest, match="more than 256") as info:
        client.put("k" * 300, 1)
    assert info.value.hint == "use a shorter key; put long data in the value"
    with pytest.raises(InvalidRequest, match="not JSON"):
        client.put("k", object())
    with pytest.raises(InvalidRequest, match="limit"):
        client.list(limit=5000)
    with pytest.raises(QuotaExceeded):
        client.put("k", "x" * 20)
