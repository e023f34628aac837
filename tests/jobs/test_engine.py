from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.engine import session_factory
from apprt.db.migrate import upgrade_to_head
from apprt.jobs import Job, JobEvent, JobRunner, JobState, StepState
from tests.jobs.demo_kind import STEPS, make_kind


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def job_of(sessions: sessionmaker[Session], job_id: int) -> tuple[JobState, list[str], list[str]]:
    with sessions() as s:
        job = s.get_one(Job, job_id)
        events = [e.type for e in s.scalars(select(JobEvent).where(JobEvent.job_id == job_id))]
        return job.state, [st.state.value for st in job.steps], events


def test_steps_run_in_order_and_pass_outputs(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    runner = JobRunner(sessions)
    runner.register(make_kind(tmp_path))
    job_id = runner.submit("demo", {"n": 1}, subject="demo")
    assert runner.wait(job_id, timeout=60) is JobState.SUCCEEDED
    _, steps, events = job_of(sessions, job_id)
    assert steps == ["done"] * 4
    assert events[:3] == ["job_created", "job_started", "step_started"]
    assert events[-1] == "job_succeeded" and events.count("progress") == 4
    assert (tmp_path / "log").read_text().split("\n")[:-1] == [f"run {s}" for s in STEPS]
    with sessions() as s:
        outputs = [st.output["marker"] for st in s.get_one(Job, job_id).steps]
    assert outputs == [str(tmp_path / f"{n}.done") for n in STEPS]


def test_failure_compensates_in_reverse_and_keeps_the_problem(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    runner = JobRunner(sessions)
    runner.register(make_kind(tmp_path, fail_at="deploy"))
    job_id = runner.submit("demo", {}, subject="demo")
    assert runner.wait(job_id, timeout=60) is JobState.ROLLED_BACK
    _, steps, _ = job_of(sessions, job_id)
    assert steps == ["compensated", "compensated", "compensated", "pending"]
    log = (tmp_path / "log").read_text().split("\n")[:-1]
    assert log == ["run resolve", "run allocate", "undo deploy", "undo allocate", "undo resolve"]
    assert not list(tmp_path.glob("*.done"))
    with sessions() as s:
        assert s.get_one(Job, job_id).error == [
            {"file": "", "location": "deploy", "reason": "deploy refused", "hint": "test"}
        ]


def test_a_live_owner_keeps_its_job(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first = JobRunner(sessions)
    first.register(make_kind(tmp_path))
    with sessions() as s:
        job = first.create(s, "demo", {}, subject="demo")
        job.lease_owner = first.owner  # held by a live process (this one)
        from datetime import timedelta

        from apprt.db.base import utcnow

        job.lease_expires_at = utcnow() + timedelta(minutes=5)
        s.commit()
        job_id = job.id
    second = JobRunner(sessions)
    second.kinds = first.kinds
    assert second.run_job(job_id) is JobState.PENDING  # not claimed: untouched
    assert second.resume_unfinished() == []


def _run_process(
    db: str, root: Path, *args: str, failpoints: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APPRT_FAILPOINTS": failpoints}
    return subprocess.run(
        [sys.executable, "-m", "tests.jobs.demo_kind", db, str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # a guard against hanging: the job itself may wait up to 120 s
        cwd=Path(__file__).parents[2],
    )


@pytest.mark.parametrize("point", [f"{s}.{w}" for s in STEPS for w in ("before", "after")])
def test_kill_9_at_every_step_then_restart_resumes(tmp_path: Path, point: str) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    root = tmp_path / "work"
    root.mkdir()
    crashed = _run_process(db, root, "submit", failpoints=f"demo.{point}=crash")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    restarted = _run_process(db, root)  # a new platform process, no failpoint
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.splitlines()[-1] == "1"  # it resumed the crashed job
    engine = create_engine(db)
    with session_factory(engine)() as s:
        job = s.get_one(Job, 1)
        assert job.state is JobState.SUCCEEDED
        assert [st.state for st in job.steps] == [StepState.DONE] * 4
        crashed_step = point.split(".")[0]
        attempts = {st.name: st.attempts for st in job.steps}
        assert attempts[crashed_step] == 2 and sum(attempts.values()) == 5
    engine.dispose()
    assert sorted(p.name for p in root.glob("*.done")) == sorted(f"{s}.done" for s in STEPS)


@pytest.mark.parametrize("step", ["allocate", "resolve"])
def test_kill_9_during_rollback_then_restart_finishes_the_rollback(
    tmp_path: Path, step: str
) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    root = tmp_path / "work"
    root.mkdir()
    crashed = _run_process(
        db, root, "submit", "fail=deploy", failpoints=f"demo.{step}.compensate=crash"
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    restarted = _run_process(db, root, "fail=deploy")
    assert restarted.returncode == 0, restarted.stderr
    engine = create_engine(db)
    with session_factory(engine)() as s:
        assert s.get_one(Job, 1).state is JobState.ROLLED_BACK
    engine.dispose()
    assert not list(root.glob("*.done"))
