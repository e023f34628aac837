"""JSON Schema of ``app.toml``, for editors and for other tools (``apprt schema manifest``)."""

from __future__ import annotations

from typing import Any

from apprt.manifest.models import Manifest

SCHEMA_ID = "https://apprt.dev/schemas/app.toml/v1.json"


def manifest_json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }
