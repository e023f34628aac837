"""``apprt apps``: the apps installed in an organization.

``apprt apps list --org ORG`` shows each app's version, state, health (the runtime's
view: running, asleep, failed...) and URL; ``apprt apps show APP --org ORG`` one app
with its settings, granted permissions, instance and notices (deprecations, yanks).
"""

from __future__ import annotations

from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from apprt.cli._client import Client, TokenOption, UrlOption
from apprt.cli._output import JsonOption, console, fail_error, print_json
from apprt.errors import ApprtError

cli = typer.Typer(no_args_is_help=True)

OrgOption = typer.Option(..., "--org", "-o", help="The organization (its slug).")

_HEALTH_STYLE = {"ok": "green", "failed": "bold red", "starting": "yellow"}


@cli.command("list")
def list_apps(
    org: str = OrgOption,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """The organization's apps: state, version, health, URL."""
    try:
        with Client(url, token) as client:
            rows = client.get_json(f"/api/v1/orgs/{quote(org, safe='')}/installations")
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    base = url.rstrip("/")
    if as_json:
        print_json([{**row, "url": f"{base}{row['url']}"} for row in rows])
        return
    if not rows:
        console.print(f"no apps installed in {escape(org)}", highlight=False)
        return
    table = Table("app", "version", "state", "health", "url")
    for row in rows:
        health = row["health"]
        style = _HEALTH_STYLE.get(health.split(" ")[0], "")
        app = escape(row["app_id"]) + ("" if row["requested"] else " [dim](dependency)[/]")
        table.add_row(
            app,
            escape(row["version"]),
            escape(row["state"]),
            f"[{style}]{escape(health)}[/]" if style else escape(health),
            escape(f"{base}{row['url']}"),
        )
    console.print(table)


@cli.command("show")
def show_app(
    app: str = typer.Argument(..., help="The app id."),
    org: str = OrgOption,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """One installed app: version, state, health, settings, grants, instance, notices."""
    try:
        with Client(url, token) as client:
            row = client.get_json(
                f"/api/v1/orgs/{quote(org, safe='')}/installations/{quote(app, safe='')}"
            )
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    if as_json:
        print_json(row)
        return
    console.print(
        f"[bold]{escape(row['app_id'])}[/] {escape(row['version'])} in {escape(org)}: "
        f"{escape(row['state'])}, health {escape(row['health'])}",
        highlight=False,
    )
    console.print(f"  url:      {escape(url.rstrip('/') + row['url'])}", highlight=False)
    console.print(f"  settings: {escape(str(row['config']))}", highlight=False)
    console.print(f"  granted:  {escape(', '.join(row['grants']) or 'nothing')}", highlight=False)
    if row.get("instance"):
        inst = row["instance"]
        console.print(
            f"  instance: {escape(inst['id'])} ({escape(inst['driver'])}, "
            f"{escape(inst['state'])}, restarts {inst['restart_count']})",
            highlight=False,
        )
    for notice in row.get("notices", []):
        console.print(
            f"  [yellow]notice[/]: {escape(notice['kind'])}: {escape(notice['message'])}",
            highlight=False,
        )
