"""The small harness every benchmark uses.

A benchmark module ``bench/bench_<area>.py`` defines ``run() -> list[Figure]``.
``python -m bench`` runs them all (or those named on the command line), writes each
figure to ``bench/results/<name>.json`` (metric, value, unit, target, machine) and a
markdown table of all figures to ``bench/results/README.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class Figure:
    name: str  # file name under results/, e.g. "pack_p50"
    metric: str  # what was measured, in words
    value: float
    unit: str
    target: str  # e.g. "<= 1000 ms"; empty when the figure is only reported
    met: bool | None = None


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


def timings(fn: Callable[[], object], *, repeat: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls after ``warmup`` discarded ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], p: float) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(p) - 1]


def write(figures: list[Figure]) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    info = machine()
    for fig in figures:
        data = asdict(fig) | {"machine": info}
        (RESULTS_DIR / f"{fig.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    rows = sorted(
        (json.loads(p.read_text()) for p in RESULTS_DIR.glob("*.json")), key=lambda d: d["name"]
    )
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {info['cpus']} CPUs, {info['processor']}, Python {info['python']}.",
        "Written by `make bench`; each row also has a JSON file beside this one.",
        "",
        "| figure | metric | value | target | met |",
        "|---|---|---|---|---|",
    ]
    for d in rows:
        met = {True: "yes", False: "**no**", None: ""}[d["met"]]
        value = f"{d['value']:.3g} {d['unit']}"
        lines.append(f"| {d['name']} | {d['metric']} | {value} | {d['target']} | {met} |")
    (RESULTS_DIR / "README.md").write_text("\n".join(lines) + "\n")


def pss_kb(pid: int) -> int:
    """Proportional set size of one process in KiB (0 when it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def sandbox_pss_kb(monitor_pid: int) -> int:
    """PSS of a bwrap sandbox: its monitor and every process below it (the instance's
    init, the server and whatever the app started)."""
    total, todo = 0, [monitor_pid]
    while todo:
        pid = todo.pop()
        total += pss_kb(pid)
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in children.read_text().split())
    return total
