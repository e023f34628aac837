"""Shared fixtures: one real bwrap driver and a bystander app that must keep serving.

Every attack test measures the bystander's latency before (baseline) and during the
attack and reports both (``record_property`` and stdout); the assertion is on their
ratio, never on an absolute time.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from apprt.manifest import Resources
from apprt.runtime.drivers.base import TaskHandle
from apprt.runtime.drivers.bwrap import BwrapDriver
from tests.runtime.drivers._apps import Workspace, get, workspace

T = TypeVar("T")

#: p50 latency of the bystander during an attack, relative to its baseline p50.
MAX_SLOWDOWN = 10.0


class LatencyProbe:
    """Times ``call`` (one request to a bystander, which must succeed) while an attack
    runs; ``label`` names the bystander in the report."""

    def __init__(self, call: Callable[[], object], label: str = "bystander") -> None:
        self.call = call
        self.label = label
        self.baseline: list[float] = []

    def sample(self) -> float:
        start = time.perf_counter()
        self.call()
        return time.perf_counter() - start

    def during(self, attack: Callable[[], T], *, min_seconds: float = 0.5) -> tuple[T, list[float]]:
        """Run ``attack`` while probing the bystander every 10 ms; its result and samples.

        The baseline is measured again right before (the same probing, no attack): the
        machine's load drifts over a module, and the ratio must compare like with like.
        """
        _, self.baseline = self._probe(lambda: None, min_seconds)
        return self._probe(attack, min_seconds)

    def _probe(self, attack: Callable[[], T], min_seconds: float) -> tuple[T, list[float]]:
        samples: list[float] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                try:
                    samples.append(self.sample())
                except BaseException as exc:  # reported below: the bystander must not fail
                    failures.append(exc)
                stop.wait(0.01)

        thread = threading.Thread(target=probe, daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            result = attack()
            left = min_seconds - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)
        finally:
            stop.set()
            thread.join(60)
        assert not failures, f"the bystander failed during the attack: {failures[:3]}"
        assert samples, "no bystander sample during the attack"
        return result, samples


class Bystander(LatencyProbe):
    """A sandbox of the driver, called on its ingress socket."""

    def __init__(self, handle: TaskHandle, data_dir: Path) -> None:
        super().__init__(self._get)
        self.handle = handle
        self.data_dir = data_dir

    def _get(self) -> None:
        status, _ = get(self.handle.ingress_socket, timeout=30)
        assert status == 200


@pytest.fixture(scope="module")
def ws() -> Iterator[Workspace]:
    with workspace() as w:
        yield w


@pytest.fixture(scope="module")
def driver(ws: Workspace) -> Iterator[BwrapDriver]:
    d = BwrapDriver(state_dir=ws.root / "state")
    assert d.fingerprint().healthy, d.fingerprint()
    yield d
    d.shutdown()


@pytest.fixture(scope="module")
def bystander(driver: BwrapDriver, ws: Workspace) -> Iterator[Bystander]:
    config = ws.config("bystander", resources=Resources(memory_mb=128, cpu=1.0))
    handle = driver.start(config)
    (config.data_dir / "secret.txt").write_text("bystander's secret\n")
    b = Bystander(handle, config.data_dir)
    for _ in range(5):
        b.sample()  # warm up
    yield b
    assert driver.inspect(handle).running, "the bystander died"
    driver.destroy(handle)


@pytest.fixture
def report(
    bystander: LatencyProbe, record_property: Callable[[str, object], None]
) -> Callable[[str, list[float]], None]:
    """Record the bystander's latency during an attack and check its slowdown."""

    def check(attack: str, samples: list[float]) -> None:
        base = statistics.median(bystander.baseline)
        during = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 2 else samples[0]
        worst = max(samples)
        ratio = during / base
        record_property("bystander_baseline_p50_ms", round(base * 1000, 2))
        record_property("bystander_attack_p50_ms", round(during * 1000, 2))
        record_property("bystander_attack_p95_ms", round(p95 * 1000, 2))
        record_property("bystander_attack_max_ms", round(worst * 1000, 2))
        record_property("bystander_samples", len(samples))
        print(
            f"\n[{attack}] {bystander.label}: p50 {base * 1000:.2f} ms -> {during * 1000:.2f} ms "
            f"during the attack (x{ratio:.2f}, p95 {p95 * 1000:.1f} ms, "
            f"max {worst * 1000:.1f} ms, {len(samples)} samples, all answered)"
        )
        assert ratio <= MAX_SLOWDOWN, f"bystander slowed x{ratio:.1f} during {attack}"

    return check
