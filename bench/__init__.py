"""Benchmarks: performance targets live here, not in timed tests (``make bench``)."""
