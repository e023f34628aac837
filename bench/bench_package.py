"""The developer loop's hot spots: parsing a manifest, building, reading and extracting.

Targets are ours (issue 2 sets none): a 1 MB app packs and verifies well within the
1 s the registry's publish budget allows (issue 3), and verification streams fast
enough that a 100 MB package is checked in a couple of seconds.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from apprt.manifest import load_manifest, parse_manifest
from apprt.package import build_package, extract_package, read_package
from bench._harness import Figure, percentile, timings

EXAMPLE = Path(__file__).parents[1] / "examples" / "sales-dashboard"


def _make_app(root: Path, total_bytes: int, files: int) -> Path:
    app = root / "app"
    shutil.copytree(EXAMPLE, app)
    rng = random.Random(7)  # reproducible filler, not security
    per_file = total_bytes // files
    for i in range(files):
        path = app / "frontend" / "assets" / f"chunk-{i:04d}.js"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Half random (incompressible), half text, like real minified bundles.
        body = rng.randbytes(per_file // 2) + b"export const x = 1;\n" * (per_file // 40)
        path.write_bytes(body)
    return app


def run() -> list[Figure]:
    figures: list[Figure] = []
    text = (EXAMPLE / "app.toml").read_text()
    parse = timings(lambda: parse_manifest(text), repeat=200, warmup=5)
    figures.append(
        Figure(
            "manifest_parse_p50",
            "parse + validate sales-dashboard app.toml, p50",
            percentile(parse, 50) * 1000,
            "ms",
            "<= 5 ms",
            percentile(parse, 50) <= 0.005,
        )
    )
    load_manifest(EXAMPLE)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small = _make_app(root / "small", 1 << 20, 50)
        out = root / "small.apppkg"
        build = timings(lambda: build_package(small, out), repeat=15)
        p50 = percentile(build, 50)
        figures.append(
            Figure(
                "pack_1mb_p50",
                "build a 1 MB, 58-file package, p50",
                p50 * 1000,
                "ms",
                "<= 250 ms",
                p50 <= 0.25,
            )
        )
        read = timings(lambda: read_package(out), repeat=15)
        p50 = percentile(read, 50)
        figures.append(
            Figure(
                "verify_1mb_p50",
                "read + verify every digest of a 1 MB package, p50",
                p50 * 1000,
                "ms",
                "<= 100 ms",
                p50 <= 0.1,
            )
        )

        def extract() -> None:
            dest = root / "x"
            shutil.rmtree(dest, ignore_errors=True)
            extract_package(out, dest)

        ext = timings(extract, repeat=15)
        p50 = percentile(ext, 50)
        figures.append(
            Figure(
                "extract_1mb_p50",
                "verify + extract a 1 MB package, p50",
                p50 * 1000,
                "ms",
                "<= 150 ms",
                p50 <= 0.15,
            )
        )

        big = _make_app(root / "big", 64 << 20, 64)
        big_out = root / "big.apppkg"
        build_package(big, big_out)
        size_mb = big_out.stat().st_size / (1 << 20)
        verify = timings(lambda: read_package(big_out), repeat=3)
        rate = size_mb / percentile(verify, 50)
        figures.append(
            Figure(
                "verify_throughput",
                "read + verify a 64 MB package (archive MB/s)",
                rate,
                "MB/s",
                ">= 50 MB/s",
                rate >= 50,
            )
        )
    return figures
