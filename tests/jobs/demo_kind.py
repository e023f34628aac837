"""A job kind for the engine's tests: each step creates a marker file, idempotently.

Run as a script it plays one platform process: ``python -m tests.jobs.demo_kind DB DIR
[submit]`` registers the kind (resuming unfinished jobs), optionally submits one, and
waits for every job to finish. ``APPRT_FAILPOINTS`` makes it crash where a test says.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from apprt.db.engine import session_factory
from apprt.db.migrate import upgrade_to_head
from apprt.errors import ApprtError
from apprt.jobs import JobKind, JobRunner, Step, StepContext

STEPS = ["resolve", "allocate", "deploy", "activate"]


def make_kind(root: Path, fail_at: str | None = None) -> JobKind:
    def run(name: str) -> Any:
        def step(ctx: StepContext) -> dict[str, Any]:
            marker = root / f"{name}.done"
            if name == fail_at:
                raise ApprtError.single(f"{name} refused", location=name, hint="test")
            with (root / "log").open("a") as log:
                log.write(f"run {name}\n")
            marker.touch()  # idempotent: running twice leaves one marker
            ctx.progress(f"{name} ok", marker=str(marker))
            return {"marker": str(marker)}

        return step

    def undo(name: str) -> Any:
        def step(ctx: StepContext) -> None:
            (root / f"{name}.done").unlink(missing_ok=True)  # tolerates never-done work
            with (root / "log").open("a") as log:
                log.write(f"undo {name}\n")

        return step

    return JobKind("demo", [Step(n, n.title(), run(n), undo(n)) for n in STEPS])


def main(db: str, root: str, *rest: str) -> None:
    engine = create_engine(db)
    upgrade_to_head(engine)
    runner = JobRunner(session_factory(engine))
    fail_at = next((r.split("=", 1)[1] for r in rest if r.startswith("fail=")), None)
    resumed = runner.register(make_kind(Path(root), fail_at))
    ids = list(resumed)
    if "submit" in rest:
        ids.append(runner.submit("demo", {"n": 1}, subject="demo"))
    for job_id in ids:
        runner.wait(job_id, timeout=120)
    print(" ".join(str(i) for i in ids))


if __name__ == "__main__":
    main(*sys.argv[1:])
