from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.drivers._apps import Workspace, workspace


@pytest.fixture
def ws() -> Iterator[Workspace]:
    with workspace() as w:
        yield w
