"""``apprt org``: organizations (tenants) and their members."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from apprt.cli._client import TokenOption, UrlOption, call
from apprt.cli._output import JsonOption, console, fail, print_json
from apprt.errors import Problem

cli = typer.Typer(no_args_is_help=True)


MaxAppsOption = typer.Option(None, "--max-apps", min=0, help="Quota: installed apps.")
MaxMemoryOption = typer.Option(
    None, "--max-memory", min=0, metavar="MB", help="Quota: sum of the apps' memory limits."
)
MaxStorageOption = typer.Option(
    None, "--max-storage", min=0, metavar="MB", help="Quota: sum of the apps' storage limits."
)


def _quotas(apps: int | None, memory: int | None, storage: int | None) -> dict[str, int]:
    given = {"max_apps": apps, "max_memory_mb": memory, "max_storage_mb": storage}
    return {k: v for k, v in given.items() if v is not None}


def _describe(org: dict[str, Any]) -> str:
    return (
        f"{org['slug']} ({org['name']}): quotas {org['max_apps']} apps, "
        f"{org['max_memory_mb']} MB memory, {org['max_storage_mb']} MB storage"
    )


@cli.command("create")
def create(
    slug: str = typer.Argument(..., help="Short name: lowercase letters, digits, '-'."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    admin: str | None = typer.Option(None, "--admin", help="User to make its org admin."),
    max_apps: int | None = MaxAppsOption,
    max_memory: int | None = MaxMemoryOption,
    max_storage: int | None = MaxStorageOption,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an organization (platform admin); quotas not given take the defaults."""
    body = {"slug": slug, "name": name, "admin": admin}
    org = call(
        url,
        token,
        "POST",
        "/api/v1/orgs",
        json=body | _quotas(max_apps, max_memory, max_storage),
        as_json=as_json,
    )
    if as_json:
        print_json(org)
    else:
        console.print(f"[green]created[/] organization {_describe(org)}")


@cli.command("update")
def update(
    slug: str = typer.Argument(..., help="The organization."),
    name: str | None = typer.Option(None, "--name", help="New display name (org admin)."),
    max_apps: int | None = MaxAppsOption,
    max_memory: int | None = MaxMemoryOption,
    max_storage: int | None = MaxStorageOption,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename an organization or set its quotas (quotas: platform admin).

    A quota lowered below what is in use keeps the installed apps; new installs that
    do not fit are refused.
    """
    body: dict[str, Any] = _quotas(max_apps, max_memory, max_storage)
    if name is not None:
        body["name"] = name
    if not body:
        fail(
            [
                Problem(
                    "nothing to change",
                    location="options",
                    hint="give --name, --max-apps, --max-memory or --max-storage",
                )
            ],
            as_json=as_json,
        )
    org = call(url, token, "PATCH", f"/api/v1/orgs/{slug}", json=body, as_json=as_json)
    if as_json:
        print_json(org)
    else:
        console.print(f"[green]updated[/] organization {_describe(org)}")


@cli.command("list")
def list_orgs(
    url: str = UrlOption, token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """The organizations you belong to."""
    orgs = call(url, token, "GET", "/api/v1/orgs", as_json=as_json)
    if as_json:
        print_json(orgs)
        return
    table = Table("slug", "name", "apps quota", "memory quota", "storage quota")
    for org in orgs:
        table.add_row(
            org["slug"],
            org["name"],
            str(org["max_apps"]),
            f"{org['max_memory_mb']} MB",
            f"{org['max_storage_mb']} MB",
        )
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
