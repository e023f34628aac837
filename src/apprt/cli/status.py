"""``apprt status`` and ``apprt whoami``: is the platform up, and who am I to it."""

from __future__ import annotations

from rich.table import Table

from apprt.cli._client import TokenOption, UrlOption, call
from apprt.cli._output import JsonOption, console, print_json


def _get_and_show(url: str, token: str | None, path: str, title: str, as_json: bool) -> None:
    data = call(url, token, "GET", path, as_json=as_json)
    if as_json:
        print_json(data)
        return
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        table.add_row(key, str(value))
    console.print(table)


def status(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Check the platform's health."""
    _get_and_show(url, None, "/healthz", f"apprt at {url}", as_json)


def whoami(
    url: str = UrlOption, token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """Show the account the token belongs to."""
    _get_and_show(url, token, "/api/v1/me", "signed in as", as_json)
