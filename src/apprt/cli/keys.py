"""``apprt keys``: Ed25519 key pairs that sign packages."""

from __future__ import annotations

from pathlib import Path

import typer

from apprt.cli._output import JsonOption, console, fail_error, print_json
from apprt.errors import ApprtError
from apprt.package import generate_keypair, key_id, load_public_key

cli = typer.Typer(no_args_is_help=True)


@cli.command("generate")
def generate(
    output: Path = typer.Option(..., "-o", "--output", help="Directory to write the keys into."),
    name: str = typer.Option("apprt-signing", "--name", help="Base name of the key files."),
    as_json: bool = JsonOption,
) -> None:
    """Write a new key pair: NAME.key (private, mode 0600) and NAME.pub."""
    try:
        paths = generate_keypair(output, name)
        kid = key_id(load_public_key(paths.public))
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    if as_json:
        print_json({"private": str(paths.private), "public": str(paths.public), "key_id": kid})
        return
    console.print(f"private key: {paths.private} (keep it secret; mode 0600)")
    console.print(f"public key:  {paths.public} (register it with your publisher account)")
    console.print(f"key id:      {kid}")
