"""Sandbox drivers behind one interface (:mod:`apprt.runtime.drivers.base`)."""
