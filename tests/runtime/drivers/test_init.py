"""The bwrap driver's pid 1: the instance's init reaps what apps leave behind and
reports the server's own exit, so crashes read the same as without it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apprt.runtime.drivers.base import TaskHandle
from apprt.runtime.drivers.bwrap import BwrapDriver
from tests.runtime.drivers._apps import Workspace, get

ORPHANS = """
import os, time

@action("/orphan")
def orphan():
    # A double fork: the child exits at once, the grandchild is orphaned to pid 1 and
    # exits a moment later. Unreaped, it would stay a zombie for the instance's life.
    child = os.fork()
    if child == 0:
        if os.fork() == 0:
            time.sleep(0.2)
        os._exit(0)
    os.waitpid(child, 0)
    return child

@action("/processes")
def processes():
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    found[int(name)] = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                pass
    return {"me": os.getpid(), "states": found}

@action("/exit3")
def exit3():
    os._exit(3)
"""


@pytest.fixture
def driver(ws: Workspace) -> Iterator[BwrapDriver]:
    d = BwrapDriver(state_dir=ws.root / "state")
    yield d
    d.shutdown()
    d.close()


def _call(handle: TaskHandle, path: str) -> Any:
    status, body = get(handle.ingress_socket, path, timeout=30)
    assert status == 200, body
    reply = json.loads(body)
    assert reply["ok"], reply
    return reply["result"]


def test_orphans_are_reaped_by_the_instances_init(driver: BwrapDriver, ws: Workspace) -> None:
    handle = driver.start(ws.config("orphans", extra=ORPHANS))
    try:
        seen = _call(handle, "/processes")
        # The app sees its init and itself, nothing of the host.
        assert seen["me"] == 2 and sorted(map(int, seen["states"])) == [1, 2], seen
        for _ in range(5):
            _call(handle, "/orphan")
        deadline = time.monotonic() + 30  # a hang guard
        while True:
            states = _call(handle, "/processes")["states"]
            if sorted(map(int, states)) == [1, 2]:
                break
            assert time.monotonic() < deadline, f"left behind: {states}"
            time.sleep(0.1)
    finally:
        driver.destroy(handle)


def test_the_servers_own_exit_is_reported_through_the_init(
    driver: BwrapDriver, ws: Workspace
) -> None:
    handle = driver.start(ws.config("exits", extra=ORPHANS))
    try:
        with contextlib.suppress(OSError):  # the server is gone before it answers
            get(handle.ingress_socket, "/exit3", timeout=30)
        result = driver.wait(handle, timeout=30)
        assert result is not None and result.exit_code == 3 and result.signal is None, result
    finally:
        driver.destroy(handle)
