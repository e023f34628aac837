"""``apprt schema``: JSON Schemas of apprt's formats, for editors and other tools."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from apprt.cli._output import print_json
from apprt.manifest import manifest_json_schema

cli = typer.Typer(no_args_is_help=True)


@cli.command("manifest")
def manifest(
    output: Path | None = typer.Option(None, "-o", "--output", help="Write to FILE, not stdout."),
) -> None:
    """The JSON Schema (2020-12) of app.toml."""
    schema = manifest_json_schema()
    if output is None:
        print_json(schema)
    else:
        output.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
