"""``apprt logs ORG APP``: what an app printed (stdout and stderr), optionally followed."""

from __future__ import annotations

import json
import sys

import httpx
import typer

from apprt.cli._client import Client, TokenOption, UrlOption
from apprt.cli._output import JsonOption, fail_error, print_json
from apprt.errors import ApprtError


def logs(
    org: str = typer.Argument(..., help="The organization."),
    app_id: str = typer.Argument(..., help="The app id, e.g. com.example.crm-connector."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output."),
    tail: int = typer.Option(100, "--tail", "-n", min=0, help="Lines of the past to show."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Show an app's logs (org admin; platform admin for shared apps).

    With --json: {"lines": [...]}; with --follow too, one JSON string per line.
    """
    path = f"/api/v1/runtime/apps/{org}/{app_id}/logs"
    params: dict[str, str | int] = {"tail": tail, "follow": str(follow).lower()}
    try:
        with Client(url, token) as client:
            if not follow:
                text = client.request("GET", path, params=params).text
                if as_json:
                    print_json({"lines": text.splitlines()})
                else:
                    sys.stdout.write(text)
                return
            no_read_timeout = httpx.Timeout(30.0, read=None)
            with client.stream("GET", path, params=params, timeout=no_read_timeout) as response:
                for line in response.iter_lines():
                    sys.stdout.write((json.dumps(line) if as_json else line) + "\n")
                    sys.stdout.flush()
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
