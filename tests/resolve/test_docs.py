"""The runnable examples in the module docstrings stay true."""

from __future__ import annotations

import doctest

import apprt.registry.distribution
import apprt.resolve


def test_resolve_docstring_example() -> None:
    result = doctest.testmod(apprt.resolve, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_sri_docstring_example() -> None:
    result = doctest.testmod(apprt.registry.distribution)
    assert result.attempted > 0 and result.failed == 0
