"""``apprt org``: organizations (tenants) and their members."""

from __future__ import annotations

import typer
from rich.table import Table

from apprt.cli._client import TokenOption, UrlOption, call
from apprt.cli._output import JsonOption, console, print_json

cli = typer.Typer(no_args_is_help=True)


@cli.command("create")
def create(
    slug: str = typer.Argument(..., help="Short name: lowercase letters, digits, '-'."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    admin: str | None = typer.Option(None, "--admin", help="User to make its org admin."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an organization (platform admin)."""
    org = call(
        url,
        token,
        "POST",
        "/api/v1/orgs",
        json={"slug": slug, "name": name, "admin": admin},
        as_json=as_json,
    )
    if as_json:
        print_json(org)
    else:
        console.print(f"[green]created[/] organization {org['slug']} ({org['name']})")


@cli.command("list")
def list_orgs(
    url: str = UrlOption, token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """The organizations you belong to."""
    orgs = call(url, token, "GET", "/api/v1/orgs", as_json=as_json)
    if as_json:
        print_json(orgs)
        return
    table = Table("slug", "name", "apps quota", "memory quota")
    for org in orgs:
        table.add_row(org["slug"], org["name"], str(org["max_apps"]), f"{org['max_memory_mb']} MB")
    console.print(table)


@cli.command("members")
def members(
    org: str = typer.Argument(...),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Members of an organization and their roles."""
    rows = call(url, token, "GET", f"/api/v1/orgs/{org}/members", as_json=as_json)
    if as_json:
        print_json(rows)
        return
    table = Table("user", "role")
    for row in rows:
        table.add_row(row["user"], row["role"])
    console.print(table)
