"""Failpoints: named places where a test can make the platform fail on purpose.

Crash safety is only real if it is tested at every step. Code calls
``failpoints.hit("install.deploy.after")`` at the risky places; nothing happens
unless ``APPRT_FAILPOINTS`` names that point, e.g.::

    APPRT_FAILPOINTS="install.deploy.after=crash"   # SIGKILL this process right there
    APPRT_FAILPOINTS="install.health.before=error"  # raise FailpointError

Several points are separated by commas. The variable is read at each hit, so a
test can set it for a subprocess only; production never sets it.
"""

from __future__ import annotations

import os
import signal

ENV = "APPRT_FAILPOINTS"


class FailpointError(RuntimeError):
    """Raised at a failpoint configured as ``error``."""


def _actions() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    actions = {}
    for item in spec.split(","):
        name, _, action = item.strip().partition("=")
        if name:
            actions[name] = action or "error"
    return actions


def hit(name: str) -> None:
    action = _actions().get(name)
    if action is None:
        return
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"failpoint {name} triggered")
