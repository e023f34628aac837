"""Run the benchmarks: ``python -m bench [AREA ...]`` (``make bench`` runs them all)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench._harness import RESULTS_DIR, write


def main(argv: list[str]) -> int:
    names = argv or sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"bench {name} ...", flush=True)
        figures = module.run()
        write(figures)
        for fig in figures:
            print(f"  {fig.name}: {fig.value:.3g} {fig.unit} (target {fig.target or '-'})")
    print(f"results: {RESULTS_DIR / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
