"""Observability: Prometheus metrics (:mod:`apprt.observe.metrics`)."""
