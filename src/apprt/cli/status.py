"""``apprt status`` and ``apprt whoami``: is the platform up, and who am I to it."""

from __future__ import annotations

from rich.table import Table

from apprt.cli._client import Client, TokenOption, UrlOption
from apprt.cli._output import JsonOption, console, fail_error, print_json
from apprt.errors import ApprtError


def _show(data: dict[str, object], title: str) -> None:
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        table.add_row(key, str(value))
    console.print(table)


def status(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Check the platform's health."""
    try:
        with Client(url, None) as client:
            data = client.get_json("/healthz")
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    if as_json:
        print_json(data)
    else:
        _show(data, f"apprt at {url}")


def whoami(
    url: str = UrlOption, token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """Show the account the token belongs to."""
    try:
        with Client(url, token) as client:
            data = client.get_json("/api/v1/me")
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    if as_json:
        print_json(data)
    else:
        _show(data, "signed in as")
