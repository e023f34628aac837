"""``apprt runtime``: the state of app instances, the limits they hit, the sandbox driver,
and suspending, waking, restarting them."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from apprt.cli._client import TokenOption, UrlOption, call
from apprt.cli._output import JsonOption, console, print_json

cli = typer.Typer(no_args_is_help=True)

OrgArg = typer.Argument(..., help="The organization.")
AppArg = typer.Argument(..., help="The app id, e.g. com.example.crm-connector.")


def _instances_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("org", "app", "version", "state", "pid", "restarts", "idle timeout", "instance")
    for row in rows:
        orgs = ",".join(row.get("orgs") or []) or (row.get("org") or "*")
        idle = row["idle_timeout_s"]
        table.add_row(
            orgs,
            row["app_id"],
            row["version"],
            row["state"],
            str(row["pid"] or "-"),
            str(row["restart_count"]),
            "never" if not idle else f"{idle:g} s",
            row["id"],
        )
    return table


@cli.command("list")
def list_instances(
    org: str | None = typer.Option(None, "--org", help="Only this organization's apps."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Instances and their states (every instance: platform admin; --org: its members)."""
    path = f"/api/v1/runtime/apps/{org}" if org else "/api/v1/runtime/instances"
    rows = call(url, token, "GET", path, as_json=as_json)
    if as_json:
        print_json(rows)
    else:
        console.print(_instances_table(rows))


@cli.command("state")
def state(
    org: str = OrgArg,
    app_id: str = AppArg,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """An app's lifecycle state and its transition history."""
    data = call(url, token, "GET", f"/api/v1/runtime/apps/{org}/{app_id}", as_json=as_json)
    if as_json:
        print_json(data)
        return
    console.print(_instances_table([data]))
    history = Table("at", "from", "to", "reason", title="history")
    for row in data["history"][-20:]:
        history.add_row(row["at"], row["from_state"] or "", row["to_state"], row["reason"])
    console.print(history)
    if data.get("limit_events"):
        console.print(_limits_table(data["limit_events"][:10]))
    if data.get("failure_log"):
        console.print("[bold red]last output before it failed:[/]")
        console.print(data["failure_log"].rstrip()[-2000:], markup=False, highlight=False)


def _limits_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("last", "first", "limit", "hits", "org", "version", "detail", title="limits hit")
    for row in rows:
        table.add_row(
            row["last_at"],
            row["first_at"],
            row["kind"],
            str(row["count"]),
            row["org"] or "*",
            row["version"],
            row["detail"],
        )
    return table


@cli.command("limits")
def limits(
    org: str = OrgArg,
    app_id: str = AppArg,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="Rows to show."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Limits an app hit, newest first: memory (OOM kill), pids (fork refused), cpu
    (throttled), storage (data volume full), request_timeout (504), egress (refused)."""
    rows = call(
        url,
        token,
        "GET",
        f"/api/v1/runtime/apps/{org}/{app_id}/limit-events",
        params={"limit": limit},
        as_json=as_json,
    )
    if as_json:
        print_json(rows)
    elif not rows:
        console.print(f"{org}/{app_id} hit no limit")
    else:
        console.print(_limits_table(rows))


@cli.command("driver")
def driver(
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """The sandbox driver: its health and which limits it enforces on this host."""
    data = call(url, token, "GET", "/api/v1/runtime/driver", as_json=as_json)
    if as_json:
        print_json(data)
        return
    health = "[green]healthy[/]" if data["healthy"] else "[red]unhealthy[/]"
    console.print(f"driver [bold]{data['name']}[/]: {health}, {data['detail']}")
    table = Table("capability", "enforced")
    for name, enforced in data["capabilities"].items():
        table.add_row(name, "[green]yes[/]" if enforced else "[red]no[/]")
    console.print(table)
    if data["allow_untrusted"]:
        console.print(
            "[bold red]untrusted apps run even where these limits are not enforced[/] "
            "(allowed by the operator)"
        )
    for key, value in sorted(data.get("attributes", {}).items()):
        console.print(f"  {key}: {value}", markup=False, highlight=False)


def _action(name: str, org: str, app_id: str, url: str, token: str | None, as_json: bool) -> None:
    data = call(
        url,
        token,
        "POST",
        f"/api/v1/runtime/apps/{org}/{app_id}/{name}",
        as_json=as_json,
        timeout=120.0,
    )
    if as_json:
        print_json(data)
    else:
        console.print(f"{org}/{app_id}: [bold]{data['state']}[/] (pid {data['pid'] or '-'})")


@cli.command("suspend")
def suspend(
    org: str = OrgArg,
    app_id: str = AppArg,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Suspend (hibernate) an app: its process stops, its data stays (org admin)."""
    _action("suspend", org, app_id, url, token, as_json)


@cli.command("activate")
def activate(
    org: str = OrgArg,
    app_id: str = AppArg,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Start an Installed or Suspended app now (org admin)."""
    _action("activate", org, app_id, url, token, as_json)


@cli.command("restart")
def restart(
    org: str = OrgArg,
    app_id: str = AppArg,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Restart an app, also one that Failed (org admin)."""
    _action("restart", org, app_id, url, token, as_json)


@cli.command("idle-timeout")
def idle_timeout(
    seconds: float = typer.Argument(..., min=0, help="Seconds without a request; 0: never."),
    org: str = typer.Option("", "--org", help="Only this organization (default: all)."),
    app_id: str = typer.Option("", "--app", help="Only this app (default: all)."),
    clear: bool = typer.Option(False, "--clear", help="Remove the policy instead."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Set when idle apps are suspended, per app, per organization or both."""
    body = {"org": org, "app_id": app_id, "idle_timeout_s": None if clear else seconds}
    data = call(url, token, "PUT", "/api/v1/runtime/idle-policy", json=body, as_json=as_json)
    if as_json:
        print_json(data)
    else:
        scope = f"{org or 'every org'} / {app_id or 'every app'}"
        console.print(f"idle timeout for {scope}: {'cleared' if clear else f'{seconds:g} s'}")
