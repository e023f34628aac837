from __future__ import annotations

import pytest

MINIMAL = """
id = "com.example.hello"
name = "Hello"
version = "1.0.0"
description = "Says hello."
publisher = "example"
license = "MIT"
platform = "^1.0"

[backend]
entry = "hello.main:app"
"""


@pytest.fixture
def minimal_manifest() -> str:
    return MINIMAL
