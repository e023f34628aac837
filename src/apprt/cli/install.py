"""``apprt install``, ``apprt update`` and ``apprt uninstall``: jobs followed live, step by step.

``apprt install APP[@RANGE] --org ORG`` shows the permissions the install asks for
(the app and the dependencies it pulls in) and asks an org admin to consent, unless
``--accept-permissions`` consents up front (no terminal and no flag: refused, nothing
installed). It then starts the install job and draws one line per step of the
blueprint's ten from the job's event stream (SSE), with what each step reports, and
ends with the app's URL. ``--json`` prints the finished job (with ``url``) instead.
Exit 0 when installed, 1 when refused or rolled back (the problems say why).

``apprt update APP[@RANGE] --org ORG`` moves an installed app to the newest version in
the range that is newer than the installed one (409 "already up to date" when there is
none): it shows the permissions the new version adds and asks for consent the same way,
then follows the update job (backup, swap, upgrade hook, health...) and ends with the
new version and the name of the state backup taken before it. A failed update is
rolled back: the old version serves, with its state.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm
from rich.table import Table

from apprt.cli._client import Client, TokenOption, UrlOption
from apprt.cli._output import JsonOption, console, fail, fail_error, print_json
from apprt.errors import ApprtError, Problem

#: An install runs for seconds; the event stream stays open that long.
FOLLOW_TIMEOUT = 600.0

OrgOption = typer.Option(..., "--org", "-o", help="The organization (its slug).")


def _q(part: str) -> str:
    return quote(part, safe="")


def parse_spec(spec: str) -> tuple[str, str]:
    """``com.example.app@^1.2`` -> (app id, range); no ``@``: the newest (``*``)."""
    app, sep, range_text = spec.partition("@")
    return app, (range_text.strip() or "*") if sep else "*"


def parse_config(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse (30, true, [1]), else text."""
    config: dict[str, Any] = {}
    problems = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            problems.append(
                Problem(f"{item!r} is not key=value", location="--config", hint="e.g. currency=EUR")
            )
            continue
        try:
            config[key.strip()] = json.loads(raw)
        except ValueError:
            config[key.strip()] = raw
    if problems:
        raise ApprtError(problems, title="invalid --config")
    return config


# -- following a job ---------------------------------------------------------------------


def _events(client: Client, job_id: int) -> Any:
    """The job's events as dicts, from the SSE stream, until the job ends."""
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
        data: list[str] = []
        for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                yield json.loads("\n".join(data))
                data = []


class StepDisplay:
    """One Rich progress line per step, with the step's messages printed above."""

    MARK = {"done": "[green]✓[/]", "failed": "[bold red]✗[/]", "undone": "[yellow]↺[/]"}

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.fields[mark]} {task.description}"),
            TextColumn("[dim]{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        for step in steps:
            self.tasks[step["name"]] = self.progress.add_task(
                f"{step['position'] + 1:>2}. {step['title']}",
                total=1,
                start=False,
                mark=" ",
                note="",
            )

    def __enter__(self) -> StepDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def _set(self, step: str | None, **fields: Any) -> None:
        if step in self.tasks:
            self.progress.update(self.tasks[step], **fields)

    def event(self, event: dict[str, Any]) -> None:
        kind, step, message = event["type"], event.get("step"), event.get("message", "")
        if kind == "step_started" and step in self.tasks:
            self.progress.start_task(self.tasks[step])
            self._set(step, note="resumed" if "resumed" in message else "")
        elif kind == "step_done":
            self._set(step, completed=1, mark=self.MARK["done"])
        elif kind == "step_failed":
            self._set(step, completed=1, mark=self.MARK["failed"], note=message[:80])
        elif kind == "step_compensated":
            self._set(step, completed=1, mark=self.MARK["undone"], note="undone")
        elif kind == "progress":
            self.progress.console.print(
                f"    {escape(message)}", highlight=False, style="dim", soft_wrap=True
            )
        elif kind in ("job_rolled_back", "job_failed"):
            self.progress.console.print(
                f"[bold red]{escape(message)}[/]", highlight=False, soft_wrap=True
            )


def follow(client: Client, job_id: int, *, show: bool) -> dict[str, Any]:
    """Follow ``job_id`` to its end (drawing its steps when ``show``); the final job."""
    job: dict[str, Any] = client.get_json(f"/api/v1/jobs/{job_id}")
    if show:
        with StepDisplay(job["steps"]) as display:
            for event in _events(client, job_id):
                display.event(event)
    else:
        for _ in _events(client, job_id):
            pass
    final: dict[str, Any] = client.get_json(f"/api/v1/jobs/{job_id}")
    return final


def _job_problems(job: dict[str, Any]) -> list[Problem]:
    problems = [
        Problem(
            reason=p.get("reason", ""),
            file=p.get("file", ""),
            location=p.get("location", ""),
            hint=p.get("hint", ""),
        )
        for p in job.get("error") or []
    ]
    return problems or [Problem(f"job {job['id']} ended {job['state']}")]


def _run_job(
    client: Client, method: str, path: str, *, as_json: bool, **request: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start a job (``method path``) and follow it to its end: (the answer, the final job)."""
    accepted: dict[str, Any] = client.request(method, path, **request).json()
    return accepted, follow(client, accepted["job_id"], show=not as_json)


def _json_result(job: dict[str, Any], **extra: Any) -> None:
    """``--json``: print the finished job (with ``extra``); exit 1 unless it succeeded."""
    print_json({**job, **extra})
    if job["state"] != "succeeded":
        raise typer.Exit(1)


def _step_output(job: dict[str, Any], step: str, key: str) -> Any:
    """What ``step`` of the finished job reported under ``key`` (None when it did not)."""
    return next(((s["output"] or {}).get(key) for s in job["steps"] if s["name"] == step), None)


def _say(text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


# -- consent ----------------------------------------------------------------------------


def _show_notices(notices: list[dict[str, Any]]) -> None:
    for notice in notices:
        _say(
            f"[yellow]notice[/]: {escape(notice['app_id'])} {escape(notice['version'])} is "
            f"{escape(notice['kind'])}: {escape(notice['message'])}"
        )


def _permission_name(perm: dict[str, Any]) -> str:
    name = escape(perm["permission"])
    return f"[bold yellow]{name}[/] (sensitive)" if perm["sensitive"] else name


def _consent(asked: bool, accepted: bool, question: str, *, nothing_was: str) -> bool:
    """Whether the permissions are consented to: ``accepted`` (``--accept-permissions``),
    else asked on a terminal when any are ``asked``; refused: exit 1, ``nothing_was``
    done (e.g. "installed")."""
    if not asked or accepted or not sys.stdin.isatty():
        return accepted
    if not Confirm.ask(question, default=False):
        fail(
            [Problem(f"consent refused; nothing was {nothing_was}", location="consent")],
            title=f"not {nothing_was}",
        )
    return True


def _show_consent(consent: dict[str, Any]) -> bool:
    """Print what the install asks for; whether any permission is asked."""
    _say(
        f"Installing [bold]{escape(consent['app'])}[/] {escape(consent['version'])} "
        + (
            "with "
            + ", ".join(
                f"{escape(p['app_id'])} {escape(p['version'])}"
                for p in consent["plan"]
                if not p["requested"]
            )
            if len(consent["plan"]) > 1
            else ""
        )
    )
    _show_notices(consent.get("notices", []))
    table = Table("app", "permission", "why", title="Permissions asked for", title_justify="left")
    asked = False
    for item in consent["permissions"]:
        for perm in item["permissions"]:
            asked = True
            table.add_row(escape(item["app_id"]), _permission_name(perm), escape(perm["reason"]))
    if asked:
        console.print(table)
    return asked


def install(
    spec: str = typer.Argument(..., help="APP or APP@RANGE, e.g. com.example.crm-connector@^1.2"),
    org: str = OrgOption,
    config: list[str] = typer.Option(
        [], "--config", "-c", help="A setting of the organization for the app: key=value."
    ),
    accept_permissions: bool = typer.Option(
        False, "--accept-permissions", help="Consent to every permission shown, without asking."
    ),
    restore: bool = typer.Option(
        True, "--restore/--fresh", help="Restore data kept from an earlier uninstall."
    ),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Install an app (and what it depends on) into an organization."""
    app, range_text = parse_spec(spec)
    try:
        settings = parse_config(config)
        with Client(url, token, timeout=FOLLOW_TIMEOUT) as client:
            base = f"/api/v1/orgs/{_q(org)}/installations"
            consent = client.get_json(
                f"{base}/{_q(app)}/consent?range={quote(range_text, safe='')}"
            )
            if not as_json:
                accept_permissions = _consent(
                    _show_consent(consent),
                    accept_permissions,
                    "Grant these permissions to the organization's apps?",
                    nothing_was="installed",
                )
            accepted, job = _run_job(
                client,
                "POST",
                base,
                as_json=as_json,
                json={
                    "app": app,
                    "range": range_text,
                    "config": settings,
                    "accept_permissions": accept_permissions,
                    "restore_data": restore,
                },
            )
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    app_url = f"{url.rstrip('/')}{accepted['url']}"
    if as_json:
        _json_result(job, url=app_url if job["state"] == "succeeded" else None)
        return
    if job["state"] != "succeeded":
        fail(_job_problems(job), title=f"{app} was not installed ({job['state']})")
    _say(
        f"[bold green]installed[/] {escape(app)} {escape(accepted['version'])} in "
        f"{escape(org)}: {escape(app_url)}"
    )


def uninstall(
    app: str = typer.Argument(..., help="The app id."),
    org: str = OrgOption,
    keep_data: bool = typer.Option(
        True, "--keep-data/--purge", help="Keep the app's data in a retained archive."
    ),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Uninstall an app from an organization (its data is kept for the retention period)."""
    try:
        with Client(url, token, timeout=FOLLOW_TIMEOUT) as client:
            _accepted, job = _run_job(
                client,
                "DELETE",
                f"/api/v1/orgs/{_q(org)}/installations/{_q(app)}",
                as_json=as_json,
                params={"keep_data": str(keep_data).lower()},
            )
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    if as_json:
        _json_result(job)
        return
    if job["state"] != "succeeded":
        fail(_job_problems(job), title=f"{app} was not uninstalled ({job['state']})")
    archive = _step_output(job, "export", "archive")
    _say(f"[bold]uninstalled[/] {escape(app)} from {escape(org)}")
    if archive:
        _say(f"  data kept in {escape(archive)}")


def _show_update(preview: dict[str, Any]) -> bool:
    """Print what the update does; whether it asks for new permissions."""
    _say(
        f"Updating [bold]{escape(preview['app'])}[/] {escape(preview['from_version'])} -> "
        f"{escape(preview['version'])}"
    )
    _show_notices(preview.get("notices", []))
    if not preview["new_permissions"]:
        return False
    table = Table("permission", "why", title="New permissions asked for", title_justify="left")
    for perm in preview["new_permissions"]:
        table.add_row(_permission_name(perm), escape(perm["reason"]))
    console.print(table)
    return True


def update(
    spec: str = typer.Argument(..., help="APP or APP@RANGE, e.g. com.example.crm-connector@^1.3"),
    org: str = OrgOption,
    config: list[str] = typer.Option(
        [], "--config", "-c", help="Change a setting of the organization for the app: key=value."
    ),
    accept_permissions: bool = typer.Option(
        False, "--accept-permissions", help="Consent to the new permissions, without asking."
    ),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Update an installed app to the newest version in a range (rolled back on failure)."""
    app, range_text = parse_spec(spec)
    try:
        settings = parse_config(config)
        with Client(url, token, timeout=FOLLOW_TIMEOUT) as client:
            base = f"/api/v1/orgs/{_q(org)}/apps/{_q(app)}/update"
            preview = client.get_json(f"{base}?range={quote(range_text, safe='')}")
            if not as_json:
                accept_permissions = _consent(
                    _show_update(preview),
                    accept_permissions,
                    "Grant these new permissions?",
                    nothing_was="updated",
                )
            accepted, job = _run_job(
                client,
                "POST",
                base,
                as_json=as_json,
                json={
                    "range": range_text,
                    "config": settings,
                    "accept_permissions": accept_permissions,
                },
            )
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    app_url = f"{url.rstrip('/')}{accepted['url']}"
    done = job["state"] == "succeeded"
    backup = _step_output(job, "backup", "backup")
    if as_json:
        _json_result(job, url=app_url if done else None, backup=backup)
        return
    if not done:
        fail(
            _job_problems(job),
            title=f"{app} was not updated ({job['state']}); "
            f"{accepted['from_version']} still serves",
        )
    _say(
        f"[bold green]updated[/] {escape(app)} {escape(accepted['from_version'])} -> "
        f"{escape(accepted['version'])} in {escape(org)}: {escape(app_url)}"
    )
    if backup:
        _say(
            f"  state backed up before the update as {escape(backup)} "
            f"(`apprt restore {escape(app)} --org {escape(org)} --backup {escape(backup)}`)"
        )
