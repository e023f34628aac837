"""``apprt publish`` and ``apprt registry ...``: talk to the registry's HTTP API.

Every command is a client command (``--url``, ``--token``, ``--json``; exit 0 done,
1 refused, 2 usage). Publishing needs a publisher token (``apprt registry token
create``); creating publishers and tokens and reviewing need the platform admin's
token; the rest (search, versions) needs none.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from apprt.cli._client import (
    ApiError,
    Client,
    TokenOption,
    UrlOption,
    _problems_from_response,
    call,
)
from apprt.cli._output import JsonOption, console, fail, fail_error, print_json
from apprt.cli.serve import LogLevel, run_server
from apprt.errors import ApprtError, Problem

API = "/api/v1/registry"
#: Validation runs in the upload request; large packages may take a while.
UPLOAD_TIMEOUT = 600.0
POLL_INTERVAL = 0.5
UNFINISHED = ("uploaded", "validating")

cli = typer.Typer(no_args_is_help=True)
publisher_cli = typer.Typer(no_args_is_help=True, help="Publisher accounts (platform admin).")
key_cli = typer.Typer(no_args_is_help=True, help="Publishers' Ed25519 signing keys.")
token_cli = typer.Typer(no_args_is_help=True, help="Publisher API tokens scoped to app ids.")
review_cli = typer.Typer(no_args_is_help=True, help="The review queue (platform admin).")
cli.add_typer(publisher_cli, name="publisher")
cli.add_typer(key_cli, name="key")
cli.add_typer(token_cli, name="token")
cli.add_typer(review_cli, name="review")


def _q(part: str) -> str:
    return quote(part, safe="")


def _call(url: str, token: str | None, method: str, path: str, as_json: bool, **kwargs: Any) -> Any:
    return call(url, token, method, path, as_json=as_json, **kwargs)


# -- output ---------------------------------------------------------------------------

_STATUS_STYLE = {
    "pass": "green",
    "warn": "yellow",
    "fail": "bold red",
    "skipped": "dim",
}
_STATE_STYLE = {
    "published": "bold green",
    "pending_review": "bold yellow",
    "rejected": "bold red",
}


def show_upload(upload: dict[str, Any]) -> None:
    what = f"{upload.get('app_id') or '?'}@{upload.get('version') or '?'}"
    console.print(
        f"upload {upload['id']}: {escape(what)} "
        f"({upload['size']} bytes, sha256 {upload['sha256'][:16]}…)",
        highlight=False,
    )
    table = Table(show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("status")
    table.add_column("result")
    for check in upload.get("checks", []):
        style = _STATUS_STYLE.get(check["status"], "")
        status = check["status"] + (" (review)" if check.get("needs_review") else "")
        table.add_row(check["name"], f"[{style}]{status}[/]", escape(check["summary"]))
    console.print(table)
    for check in upload.get("checks", []):
        if check["status"] in ("warn", "fail") and check["problems"]:
            console.print(f"[bold]{check['name']}[/]:")
            for p in check["problems"]:
                where = ":".join(x for x in (p.get("file"), p.get("location")) if x)
                line = f"{where}: {p['reason']}" if where else p["reason"]
                console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
                if p.get("hint"):
                    console.print(f"      [dim]fix: {escape(p['hint'])}[/]", highlight=False)
    state = upload["state"]
    suffix = {
        "published": "",
        "pending_review": " (a platform admin reviews it: apprt registry review list)",
    }.get(state, "")
    note = " (identical to the existing version; nothing new)" if upload.get("idempotent") else ""
    console.print(
        f"state: [{_STATE_STYLE.get(state, 'bold')}]{state}[/]{escape(note + suffix)}",
        highlight=False,
    )


def show_versions(versions: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for column in ("version", "state", "platform", "published", "notes"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v["version"],
            v["state"],
            v["platform"],
            (v.get("published_at") or "")[:19],
            escape("; ".join(v.get("warnings", []))),
        )
    console.print(table)


# -- publish ------------------------------------------------------------------------


def _post_package(client: Client, path: Path, backport: bool) -> httpx.Response:
    http: httpx.Client = client._http
    try:
        with path.open("rb") as body:
            return http.post(
                f"{API}/uploads",
                content=body,
                params={"backport": "true"} if backport else {},
                headers={"Content-Type": "application/octet-stream"},
                timeout=UPLOAD_TIMEOUT,
            )
    except httpx.TransportError as exc:
        raise ApiError(
            [
                Problem(
                    f"cannot reach the registry at {client.url}: {exc}",
                    hint="start it with `apprt serve`, or pass --url",
                )
            ],
            title="registry unreachable",
        ) from None


def _wait(client: Client, upload: dict[str, Any], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while upload["state"] in UNFINISHED and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        upload = client.get_json(f"{API}/uploads/{upload['id']}")
    return upload


def publish(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="The signed .apppkg."
    ),
    backport: bool = typer.Option(
        False, "--backport", help="A fix for an older line: may be below the newest version."
    ),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Upload a signed package to the registry, wait for its checks, show the outcome.

    Ends with the state: published (auto-approved), pending_review (new or sensitive
    permissions, or code a reviewer should see) or rejected (exit 1).
    """
    try:
        with Client(url, token, timeout=UPLOAD_TIMEOUT) as client:
            response = _post_package(client, file, backport)
            if response.status_code >= 400:
                problems = _problems_from_response(response)
                location = response.headers.get("location", "")
                upload = None
                if location.startswith(f"{API}/uploads/"):
                    upload = client.get_json(location)
                if as_json:
                    print_json(
                        {"ok": False, "upload": upload, "problems": [p.as_dict() for p in problems]}
                    )
                    raise typer.Exit(1)
                if upload is not None:
                    show_upload(upload)
                fail(problems, title=f"{file.name} was not published")
            upload = _wait(client, response.json(), UPLOAD_TIMEOUT)
    except ApprtError as exc:
        fail_error(exc, as_json=as_json)
    if as_json:
        print_json({"ok": upload["state"] != "rejected", "upload": upload})
    else:
        show_upload(upload)
    if upload["state"] == "rejected":
        raise typer.Exit(1)


# -- registry ... ---------------------------------------------------------------------


@cli.command("serve")
def serve_registry(
    port: int = typer.Option(8080, envvar="APPRT_PORT", min=0, max=65535, help="TCP port."),
    host: str = typer.Option("127.0.0.1", envvar="APPRT_HOST", help="Address to bind."),
    data_dir: Path | None = typer.Option(
        None, envvar="APPRT_DATA_DIR", file_okay=False, help="Data directory."
    ),
    log_level: LogLevel = typer.Option(
        LogLevel.INFO, envvar="APPRT_LOG_LEVEL", case_sensitive=False, help="Log level."
    ),
) -> None:
    """Run the registry alone: its API (/api/v1/registry), /blobs, /tuf and the accounts
    its publishers and admin log in with; no runtime, gateway, installs or shell.

    It uses the same settings, data directory and database layout as `apprt serve`:
    point installers and `apprt publish --url` at it.
    """
    from apprt.server import REGISTRY_COMPONENTS

    run_server(
        host=host,
        port=port,
        data_dir=data_dir,
        log_level=log_level,
        components=REGISTRY_COMPONENTS,
        what="apprt registry",
    )


@cli.command("status")
def status(
    upload_id: int = typer.Argument(..., help="The upload id `apprt publish` printed."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Show an upload's state and every check's result."""
    upload = _call(url, token, "GET", f"{API}/uploads/{upload_id}", as_json)
    if as_json:
        print_json(upload)
    else:
        show_upload(upload)


@publisher_cli.command("create")
def publisher_create(
    name: str = typer.Argument(..., help="Lowercase name apps put in `publisher`."),
    display_name: str = typer.Option("", "--display-name", help="Shown in the marketplace."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a publisher (platform admin)."""
    data = _call(
        url,
        token,
        "POST",
        f"{API}/publishers",
        as_json,
        json={"name": name, "display_name": display_name},
    )
    if as_json:
        print_json(data)
    else:
        console.print(f"publisher [bold]{escape(data['name'])}[/] created", highlight=False)
        console.print(
            f"next: apprt registry key add {name} KEY.pub; "
            f"apprt registry token create {name} --scope 'com.example.*'",
            highlight=False,
        )


@publisher_cli.command("list")
def publisher_list(
    url: str = UrlOption, token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """List publishers (platform admin)."""
    data = _call(url, token, "GET", f"{API}/publishers", as_json)
    if as_json:
        print_json(data)
        return
    table = Table(title="publishers")
    for column in ("name", "keys", "apps"):
        table.add_column(column)
    for p in data:
        active = sum(1 for k in p["keys"] if k["active"])
        table.add_row(p["name"], f"{active} active / {len(p['keys'])}", ", ".join(p["apps"]))
    console.print(table)


@key_cli.command("add")
def key_add(
    publisher: str = typer.Argument(..., help="The publisher's name."),
    pubkey_file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="Ed25519 public key (PEM)."
    ),
    name: str = typer.Option("", "--name", help="A label for the key."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Register a public key packages of PUBLISHER may be signed with."""
    try:
        pem = pubkey_file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail([Problem(f"cannot read the key: {exc}", file=str(pubkey_file))], as_json=as_json)
    data = _call(
        url,
        token,
        "POST",
        f"{API}/publishers/{_q(publisher)}/keys",
        as_json,
        json={"public_key": pem, "name": name or pubkey_file.stem},
    )
    if as_json:
        print_json(data)
    else:
        console.print(f"key {data['key_id']} added to {escape(publisher)}", highlight=False)


@key_cli.command("revoke")
def key_revoke(
    publisher: str = typer.Argument(..., help="The publisher's name."),
    key_id: str = typer.Argument(..., help="The key id (sha256 of the public key)."),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a signing key: packages signed only by it are refused from now on."""
    data = _call(
        url,
        token,
        "POST",
        f"{API}/publishers/{_q(publisher)}/keys/{_q(key_id)}/revoke",
        as_json,
        json={"reason": reason},
    )
    if as_json:
        print_json(data)
    else:
        console.print(f"key {data['key_id']} revoked", highlight=False)


@token_cli.command("create")
def token_create(
    publisher: str = typer.Argument(..., help="The publisher's name."),
    scope: list[str] = typer.Option(
        ..., "--scope", help="App-id glob the token may publish, e.g. 'com.example.*' (repeat)."
    ),
    name: str = typer.Option("", "--name", help="A label for the token."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Mint a publisher token (platform admin); it is printed once."""
    data = _call(
        url,
        token,
        "POST",
        f"{API}/publishers/{_q(publisher)}/tokens",
        as_json,
        json={"scopes": scope, "name": name},
    )
    if as_json:
        print_json(data)
    else:
        console.print(
            f"token {data['id']} for {escape(publisher)} (scopes: "
            f"{escape(', '.join(data['scopes']))}); it is shown only now:",
            highlight=False,
        )
        typer.echo(data["token"])


@review_cli.command("list")
def review_list(
    url: str = UrlOption, token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """Versions waiting for review, with why."""
    data = _call(url, token, "GET", f"{API}/reviews", as_json)
    if as_json:
        print_json(data)
        return
    if not data:
        console.print("nothing to review")
        return
    table = Table(title="pending review")
    for column in ("app", "version", "publisher", "upload", "why"):
        table.add_column(column)
    for item in data:
        table.add_row(
            item["app_id"],
            item["version"],
            item["publisher"],
            str(item["upload_id"]),
            escape("\n".join(item["reasons"])),
        )
    console.print(table)


def _version_action(
    action: str,
    app: str,
    version: str,
    body: dict[str, str],
    url: str,
    token: str | None,
    as_json: bool,
) -> None:
    data = _call(
        url,
        token,
        "POST",
        f"{API}/apps/{_q(app)}/versions/{_q(version)}/{action}",
        as_json,
        json=body,
    )
    if as_json:
        print_json(data)
    else:
        console.print(f"{escape(app)}@{escape(version)}: {data['state']}", highlight=False)
        for warning in data.get("warnings", []):
            console.print(f"  [yellow]{escape(warning)}[/]", highlight=False)


AppArg = typer.Argument(..., help="The app id.")
VersionArg = typer.Argument(..., help="The version.")


@review_cli.command("approve")
def review_approve(
    app: str = AppArg,
    version: str = VersionArg,
    reason: str = typer.Option("", "--reason", help="Note recorded with the approval."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Publish a pending version."""
    _version_action("approve", app, version, {"reason": reason}, url, token, as_json)


@review_cli.command("reject")
def review_reject(
    app: str = AppArg,
    version: str = VersionArg,
    reason: str = typer.Option(..., "--reason", help="Why (shown to the publisher)."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Refuse a pending version."""
    _version_action("reject", app, version, {"reason": reason}, url, token, as_json)


@cli.command("deprecate")
def deprecate(
    app: str = AppArg,
    version: str = VersionArg,
    message: str = typer.Option(..., "--message", help="Why, shown to installers."),
    replacement: str = typer.Option("", "--replacement", help="What to use instead."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Deprecate a version: still installable, with a warning."""
    body = {"message": message, "replacement": replacement}
    _version_action("deprecate", app, version, body, url, token, as_json)


@cli.command("yank")
def yank(
    app: str = AppArg,
    version: str = VersionArg,
    reason: str = typer.Option(..., "--reason", help="Why (shown to installers)."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Yank a version: no new installs unless pinned exactly; existing ones keep running."""
    _version_action("yank", app, version, {"reason": reason}, url, token, as_json)


@cli.command("unpublish")
def unpublish(
    app: str = AppArg,
    version: str = VersionArg,
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove a version (only soon after publication and when nothing depends on it)."""
    _version_action("unpublish", app, version, {"reason": reason}, url, token, as_json)


@cli.command("search")
def search(
    query: str = typer.Argument("", help="Words to look for (all must match)."),
    tag: list[str] = typer.Option([], "--tag", help="Only apps with this tag (repeat)."),
    limit: int = typer.Option(50, "--limit", min=1, max=200),
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Search the marketplace."""
    params: dict[str, Any] = {"q": query, "tag": tag, "limit": limit}
    data = _call(url, token, "GET", f"{API}/search", as_json, params=params)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{len(data['results'])} app(s)")
    for column in ("app", "latest", "name", "tags", "description"):
        table.add_column(column)
    for a in data["results"]:
        table.add_row(
            a["app_id"],
            a["latest_version"] or "",
            escape(a["name"]),
            ", ".join(a["tags"]),
            escape(a["description"]),
        )
    console.print(table)


@cli.command("versions")
def versions(
    app: str = AppArg,
    url: str = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Versions of an app, newest first, with deprecation and yank notes."""
    data = _call(url, token, "GET", f"{API}/apps/{_q(app)}/versions", as_json)
    if as_json:
        print_json(data)
    else:
        show_versions(data, app)


# -- registry tuf ... (the TUF repository's operator commands) ---------------------------

from apprt.registry.tuf.cli import cli as tuf_cli  # noqa: E402

cli.add_typer(tuf_cli, name="tuf")
