"""PackageLimits validation, and the runnable examples in the module docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

from apprt.package import DEFAULT_LIMITS, PackageLimits


def test_defaults() -> None:
    assert DEFAULT_LIMITS.max_member_size == 64 * 2**20
    assert DEFAULT_LIMITS.max_total_size == 256 * 2**20
    assert DEFAULT_LIMITS.max_members == 10_000
    assert DEFAULT_LIMITS.max_compression_ratio == 100
    assert DEFAULT_LIMITS.max_path_length == 255
    assert DEFAULT_LIMITS.max_path_depth == 32
    assert DEFAULT_LIMITS.max_stream_size > DEFAULT_LIMITS.max_total_size


@pytest.mark.parametrize("field", ["max_member_size", "max_members", "max_compression_ratio"])
@pytest.mark.parametrize("value", [0, -1, True, "10"])
def test_invalid_limits(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        PackageLimits(**{field: value})  # type: ignore[arg-type]


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.max_members = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "module",
    [
        "apprt.package",
        "apprt.package.archive",
        "apprt.package.extract",
        "apprt.package.signing",
        "apprt.package.wheels",
        "apprt.package.limits",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
