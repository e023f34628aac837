"""The lifecycle's transition table, and its history in the database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from apprt.db.engine import make_engine, session_factory, session_scope
from apprt.db.migrate import upgrade_to_head
from apprt.runtime.lifecycle import (
    TRANSITIONS,
    IllegalTransitionError,
    StaleStateError,
    State,
    can_transition,
    check_transition,
    record_transition,
)
from apprt.runtime.models import Instance, Transition
from apprt.settings import Settings

S = State


def test_the_blueprint_moves_are_allowed() -> None:
    blueprint = [
        (S.INSTALLED, S.LOADING),  # user access or scheduled activation
        (S.LOADING, S.RUNNING),  # successful initialization
        (S.LOADING, S.FAILED),
        (S.RUNNING, S.SUSPENDED),  # resource optimization or maintenance
        (S.SUSPENDED, S.LOADING),  # wake
        (S.RUNNING, S.UPDATING),  # new version deployment
        (S.UPDATING, S.LOADING),
        (S.UPDATING, S.RUNNING),
        (S.RUNNING, S.FAILED),  # crash loop
        (S.FAILED, S.LOADING),  # manual restart
    ]
    for source, target in blueprint:
        assert can_transition(source, target), (source, target)
    for source in State:
        if source is not S.UNINSTALLING:
            assert can_transition(source, S.UNINSTALLING), source


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.INSTALLED, S.RUNNING),  # never without Loading
        (S.SUSPENDED, S.RUNNING),  # a wake goes through Loading
        (S.FAILED, S.RUNNING),
        (S.LOADING, S.SUSPENDED),
        (S.UNINSTALLING, S.LOADING),  # terminal
        (S.UNINSTALLING, S.UNINSTALLING),
        (S.RUNNING, S.RUNNING),
        (S.INSTALLED, S.INSTALLED),
    ],
)
def test_illegal_moves_are_refused_with_what_is_allowed(source: State, target: State) -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        check_transition("i1", source, target)
    error = caught.value
    assert error.status_code == 409
    (problem,) = error.problems
    assert source.value in problem.reason and target.value in problem.reason
    allowed = sorted(s.value for s in TRANSITIONS[source]) or ["none"]
    assert all(name in problem.hint for name in allowed)


def test_every_state_is_in_the_table_and_every_target_is_a_state() -> None:
    assert set(TRANSITIONS) == set(State)
    for targets in TRANSITIONS.values():
        assert targets <= set(State)
    assert TRANSITIONS[S.UNINSTALLING] == frozenset()
    # Every state is reachable from Installed.
    seen, frontier = {S.INSTALLED}, [S.INSTALLED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(State)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    settings_ = Settings(data_dir=tmp_path_factory.mktemp("lifecycle"))
    engine = make_engine(settings_)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def _instance(session: Session, instance_id: str) -> Instance:
    row = Instance(
        id=instance_id,
        org="acme",
        app_id="com.test.app",
        version="1.0.0",
        tenancy="isolated",
        entry="app.main:app",
        driver="process",
        state=S.INSTALLED,
        code_dir="/code",
        data_dir="/data",
        run_dir="/run",
        log_dir="/logs",
        resources={},
    )
    session.add(row)
    session.flush()
    return row


_counter = iter(range(10**9))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(targets=st.lists(st.sampled_from(list(State)), max_size=25))
def test_random_sequences_never_reach_an_illegal_state_and_history_matches(
    engine: Engine, targets: list[State]
) -> None:
    sessions = session_factory(engine)
    instance_id = f"i{next(_counter):012x}"
    accepted: list[tuple[State, State]] = []
    with session_scope(sessions) as session:
        _instance(session, instance_id)
        current = S.INSTALLED
        for target in targets:
            try:
                record_transition(session, instance_id, current, target, f"to {target.value}")
            except IllegalTransitionError:
                assert not can_transition(current, target)
                continue
            assert target in TRANSITIONS[current]
            accepted.append((current, target))
            current = target
            stored = session.scalar(select(Instance.state).where(Instance.id == instance_id))
            assert stored is current
    with session_scope(sessions) as session:
        history = session.scalars(
            select(Transition).where(Transition.instance_id == instance_id).order_by(Transition.id)
        ).all()
        assert [(h.from_state, h.to_state) for h in history] == accepted
        assert all(h.reason and h.at is not None for h in history)
        final = session.get(Instance, instance_id)
        assert final is not None
        assert final.state is (accepted[-1][1] if accepted else S.INSTALLED)


def test_a_transition_needs_a_reason(engine: Engine) -> None:
    with session_scope(session_factory(engine)) as session:
        _instance(session, "ireason000001")
        with pytest.raises(ValueError, match="reason"):
            record_transition(session, "ireason000001", S.INSTALLED, S.LOADING, "")
        session.rollback()


def test_a_transition_from_a_state_the_row_is_not_in_is_refused(engine: Engine) -> None:
    """Two writers cannot both move an instance: the row must still be in ``source``."""
    sessions = session_factory(engine)
    with session_scope(sessions) as session:
        _instance(session, "istale0000001")
        record_transition(session, "istale0000001", S.INSTALLED, S.LOADING, "first")
    with session_scope(sessions) as session, pytest.raises(StaleStateError):
        record_transition(session, "istale0000001", S.INSTALLED, S.LOADING, "second")
    with session_scope(sessions) as session:
        history = session.scalars(
            select(Transition.reason).where(Transition.instance_id == "istale0000001")
        ).all()
    assert history == ["first"]


def test_fields_are_written_with_the_transition(engine: Engine) -> None:
    sessions = session_factory(engine)
    with session_scope(sessions) as session:
        _instance(session, "ifields000001")
        record_transition(session, "ifields000001", S.INSTALLED, S.LOADING, "go")
        record_transition(session, "ifields000001", S.LOADING, S.RUNNING, "up", handle={"pid": 42})
    with session_scope(sessions) as session:
        row = session.get(Instance, "ifields000001")
        assert row is not None and row.state is S.RUNNING and row.handle == {"pid": 42}
