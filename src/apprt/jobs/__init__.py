"""Durable jobs: install, update, rollback and uninstall run as persisted, resumable steps.

See :mod:`apprt.jobs.engine` for the algorithm and :mod:`apprt.jobs.failpoints`
for how tests crash the platform on purpose at every step.
"""

from apprt.jobs.engine import JobKind, JobRunner, Step, StepContext
from apprt.jobs.models import Job, JobEvent, JobState, JobStep, StepState

__all__ = [
    "Job",
    "JobEvent",
    "JobKind",
    "JobRunner",
    "JobState",
    "JobStep",
    "Step",
    "StepContext",
    "StepState",
]
