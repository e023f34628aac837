"""Every driver, the same contract: start, inspect, stats, stop, wait, destroy, recover."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from apprt.runtime.drivers.base import Driver
from apprt.runtime.drivers.process import ProcessDriver
from tests.runtime.drivers._apps import Workspace, get, pid_alive


def _make(name: str, ws: Workspace) -> Driver:
    if name == "process":
        return ProcessDriver()
    from apprt.runtime.drivers.bwrap import BwrapDriver

    return BwrapDriver(state_dir=ws.root / "state")


DRIVERS = ["process", "bwrap"]


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def driver(driver_name: str, ws: Workspace) -> Iterator[Driver]:
    d = _make(driver_name, ws)
    yield d
    shutdown = getattr(d, "shutdown", None)
    if shutdown is not None:
        shutdown()
    d.close()


def test_start_inspect_stats_stop_wait_destroy(driver: Driver, ws: Workspace) -> None:
    config = ws.config("life")
    handle = driver.start(config)
    try:
        assert handle.driver == driver.name
        status, body = get(handle.ingress_socket)
        assert status == 200 and body.startswith(b"hello ")
        st = driver.inspect(handle)
        assert st.running and st.exit is None and st.pid == handle.pid
        stats = driver.stats(handle)
        assert stats.memory_bytes > 0 and stats.pids >= 1 and stats.cpu_seconds >= 0
        assert driver.wait(handle, timeout=0.05) is None
        driver.stop(handle, timeout=30)
        result = driver.wait(handle, timeout=30)
        assert result is not None and result.exit_code == 0, result
        assert not driver.inspect(handle).running
        assert driver.stats(handle).pids == 0
        driver.stop(handle)  # no-op once stopped
    finally:
        driver.destroy(handle)
    driver.destroy(handle)  # idempotent
    assert not handle.ingress_socket.exists()
    assert not pid_alive(handle.pid)


def test_crash_is_reported_with_its_signal(driver: Driver, ws: Workspace) -> None:
    handle = driver.start(ws.config("crash"))
    try:
        import os

        os.kill(handle.pid, signal.SIGKILL)
        result = driver.wait(handle, timeout=30)
        assert result is not None and result.signal == signal.SIGKILL, result
        assert not result.oom_killed
    finally:
        driver.destroy(handle)


def test_recover_with_a_new_driver_object(driver_name: str, ws: Workspace) -> None:
    first = _make(driver_name, ws)
    handle = first.start(ws.config("adopt"))
    first.close()
    second = _make(driver_name, ws)
    try:
        assert second.recover(handle)
        assert second.inspect(handle).running
        assert get(handle.ingress_socket)[0] == 200
        assert second.stats(handle).memory_bytes > 0
        second.stop(handle, timeout=30)
        result = second.wait(handle, timeout=30)
        assert result is not None
        assert not second.inspect(handle).running
        assert not second.recover(handle)
    finally:
        second.destroy(handle)
        shutdown = getattr(second, "shutdown", None)
        if shutdown is not None:
            shutdown()


def test_start_is_fast_enough_to_measure(driver: Driver, ws: Workspace) -> None:
    start = time.perf_counter()
    handle = driver.start(ws.config("timed"))
    elapsed = time.perf_counter() - start
    driver.destroy(handle)
    print(f"{driver.name} start to ready: {elapsed * 1000:.1f} ms")


def test_waiters_in_several_threads_all_see_the_exit(driver: Driver, ws: Workspace) -> None:
    import threading

    handle = driver.start(ws.config("waiters"))
    results: list[object] = []

    def waiter() -> None:
        results.append(driver.wait(handle, timeout=60))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.1)
        driver.stop(handle, timeout=30)
        for t in threads:
            t.join(90)
        assert len(results) == 3 and all(r is not None for r in results), results
        assert driver.inspect(handle).exit is not None
    finally:
        driver.destroy(handle)
