"""Printing results and refusals the same way in every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from apprt.errors import ApprtError, Problem

console = Console()
err_console = Console(stderr=True)

#: Exit codes every command uses.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(problems: Iterable[Problem], *, title: str = "refused", as_json: bool = False) -> NoReturn:
    """Report every problem and exit 1."""
    problems = list(problems)
    if as_json:
        print_json({"ok": False, "title": title, "problems": [p.as_dict() for p in problems]})
    else:
        err_console.print(f"[bold red]error[/]: {escape(title)}")
        for p in problems:
            where = escape(":".join(x for x in (p.file, p.location) if x))
            reason = escape(p.reason)
            line = f"  [bold]{where}[/]: {reason}" if where else f"  {reason}"
            err_console.print(line, highlight=False, soft_wrap=True)
            if p.hint:
                err_console.print(f"      [dim]fix: {escape(p.hint)}[/]", highlight=False)
    raise typer.Exit(EXIT_REFUSED)


def fail_error(error: ApprtError, *, as_json: bool = False) -> NoReturn:
    fail(error.problems, title=error.title, as_json=as_json)
