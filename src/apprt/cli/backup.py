"""``apprt backup`` / ``apprt restore``: an app's state in an organization (org admins).

The platform keeps the backups (``<data dir>/backups/<org>/<app>/``); these commands
ask it to make one, list them, download one, or restore one (or a file you have).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from apprt.cli._client import Client, TokenOption, UrlOption
from apprt.cli._output import JsonOption, console, fail, fail_error, print_json
from apprt.errors import ApprtError, Problem


def _base(org: str, app_id: str) -> str:
    return f"/api/v1/orgs/{org}/apps/{app_id}/backups"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.chmod(0o600)  # an app's data: for its admins only
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def backup(
    app_id: str = typer.Argument(..., help="The app id, e.g. com.example.team-notes."),
    org: str = typer.Option(..., "--org", help="The organization."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also save the backup to this file.", dir_okay=False
    ),
    list_: bool = typer.Option(False, "--list", help="List the backups instead of making one."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Back up an app's state in an organization now (org admin).

    The platform keeps it (the newest 20 per app); -o also saves a copy here, which
    `apprt restore --from FILE` accepts. --list shows the backups the platform keeps.
    """
    try:
        with Client(url, token) as client:
            if list_:
                rows = client.get_json(_base(org, app_id))
                if as_json:
                    print_json(rows)
                    return
                table = Table("name", "reason", "created", "size")
                for row in rows:
                    table.add_row(row["name"], row["reason"], row["created_at"], str(row["size"]))
                console.print(table)
                return
            made: dict[str, Any] = client.request("POST", _base(org, app_id)).json()
            if output is not None:
                data = client.request("GET", f"{_base(org, app_id)}/{made['name']}").content
                _write_atomically(output, data)
                made["file"] = str(output)
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    except OSError as exc:
        fail([Problem(f"cannot write {output}: {exc}", file=str(output))], as_json=as_json)
    if as_json:
        print_json(made)
        return
    console.print(
        f"[green]backed up[/] {made['keys']} keys ({made['bytes']} bytes) of {app_id} in {org}: "
        f"{made['name']}" + (f", saved to {output}" if output is not None else "")
    )


def restore(
    app_id: str = typer.Argument(..., help="The app id, e.g. com.example.team-notes."),
    org: str = typer.Option(..., "--org", help="The organization."),
    from_file: Path | None = typer.Option(
        None,
        "--from",
        help="A backup file (from `apprt backup -o`); default: the platform's newest backup.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
    name: str | None = typer.Option(
        None, "--backup", help="The name of a backup the platform keeps (see --list)."
    ),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Replace an app's state in an organization with a backup (org admin).

    The state as it was is backed up first (reason before-restore), so a restore can
    be undone with `apprt restore APP --org ORG --backup NAME`.
    """
    if from_file is not None and name is not None:
        fail(
            [Problem("--from and --backup are exclusive", hint="give one of them")],
            as_json=as_json,
        )
    body: dict[str, Any] = {}
    if from_file is not None:
        try:
            document = json.loads(from_file.read_bytes())
        except (OSError, ValueError) as exc:
            fail(
                [
                    Problem(
                        f"cannot read {from_file} as JSON: {exc}",
                        file=str(from_file),
                        hint="pass a file written by `apprt backup -o`",
                    )
                ],
                as_json=as_json,
            )
        if not isinstance(document, dict):
            fail(
                [Problem("not a backup (a JSON object is expected)", file=str(from_file))],
                as_json=as_json,
            )
        body["data"] = document
    elif name is not None:
        body["name"] = name
    try:
        with Client(url, token, timeout=300.0) as client:
            result = client.request("POST", f"{_base(org, app_id)}/restore", json=body).json()
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    if as_json:
        print_json(result)
        return
    console.print(
        f"[green]restored[/] {result['keys']} keys ({result['bytes']} bytes) of {app_id} in "
        f"{org} from {result['restored_from']}; the previous state is backup "
        f"{result['safety_backup']}"
    )
