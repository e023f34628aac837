"""``apprt user`` and ``apprt login``: people, their roles, their sessions."""

from __future__ import annotations

import sys

import typer

from apprt.cli._client import TokenOption, UrlOption, call
from apprt.cli._output import JsonOption, console, print_json

cli = typer.Typer(no_args_is_help=True)

PasswordStdin = typer.Option(
    False, "--password-stdin", help="Read the password from standard input (for scripts)."
)


def _password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=confirm))


@cli.command("create")
def create(
    name: str = typer.Argument(..., help="User name: lowercase letters, digits, '.', '_', '-'."),
    password: bool = typer.Option(False, "--password", help="Set a password (prompted)."),
    password_stdin: bool = PasswordStdin,
    platform_admin: bool = typer.Option(False, "--platform-admin", help="Make a platform admin."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a user (platform admin)."""
    secret = _password(password_stdin, confirm=True) if password or password_stdin else None
    body = {"name": name, "password": secret, "platform_admin": platform_admin}
    user = call(url, token, "POST", "/api/v1/users", json=body, as_json=as_json)
    if as_json:
        print_json(user)
    else:
        console.print(f"[green]created[/] user {user['name']} ({user['role']})")


@cli.command("grant")
def grant(
    name: str = typer.Argument(..., help="The user."),
    org: str = typer.Option(..., "--org", help="The organization."),
    role: str = typer.Option("member", "--role", help="member or org_admin."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a user a role in an organization (org admin)."""
    row = call(
        url,
        token,
        "PUT",
        f"/api/v1/orgs/{org}/members/{name}",
        json={"role": role},
        as_json=as_json,
    )
    if as_json:
        print_json(row)
    else:
        console.print(f"[green]granted[/] {row['user']} the role {row['role']} in {org}")


@cli.command("revoke")
def revoke(
    name: str = typer.Argument(...),
    org: str = typer.Option(..., "--org"),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove a user from an organization (org admin)."""
    call(url, token, "DELETE", f"/api/v1/orgs/{org}/members/{name}", as_json=as_json)
    if as_json:
        print_json({"ok": True})
    else:
        console.print(f"removed {name} from {org}")


def login(
    name: str = typer.Argument(..., help="Your user name."),
    password_stdin: bool = PasswordStdin,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Log in with a password; prints a session token to use as $APPRT_TOKEN."""
    secret = _password(password_stdin, confirm=False)
    session = call(
        url, None, "POST", "/api/v1/login", json={"name": name, "password": secret}, as_json=as_json
    )
    if as_json:
        print_json(session)
        return
    console.print(f"logged in as {session['user']['name']} until {session['expires_at']}")
    console.print(f"export APPRT_TOKEN={session['token']}", highlight=False, soft_wrap=True)
