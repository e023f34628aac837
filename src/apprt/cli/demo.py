"""``apprt demo``: seed a running platform with the examples, as ``make up`` does.

Against the platform at ``--url`` (waiting for it to answer), with the platform
admin's token from ``<data dir>/admin.token``:

1. a development signing key made on first run (``<data dir>/demo/keys/``) and a
   publisher ``example`` with that key and a scoped token (kept in
   ``<data dir>/demo/publisher.token``, 0600);
2. the three examples packed (wheels from the cache, else PyPI), signed with that key,
   published through the registry and approved (they ask for permissions);
3. an organization ``demo`` and a user ``demo`` (its org admin) with a password made
   on first run (``<data dir>/demo/demo.password``, 0600);
4. the examples installed into ``demo`` (sales-dashboard pulls crm-connector first),
   each job's steps drawn as it runs;

then prints the URLs, the admin token file and the demo login. Every step finds what
an earlier run made and reuses it, so a second run changes nothing.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer
from rich.markup import escape

from apprt.cli._client import ApiError, Client, UrlOption, _problems_from_response
from apprt.cli._output import console, fail, fail_error
from apprt.cli.install import follow
from apprt.errors import ApprtError, Problem
from apprt.manifest import load_manifest
from apprt.package import (
    build_package,
    collect_wheels,
    generate_keypair,
    load_private_key,
    sign_package,
)

#: Publication order (sales-dashboard depends on crm-connector) and install order.
EXAMPLES = ("crm-connector", "team-notes", "sales-dashboard")
INSTALL = ("sales-dashboard", "team-notes")
PUBLISHER = "example"
ORG = "demo"
USER = "demo"


def _secret_file(path: Path, make: Any) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value: str = make()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    tmp.rename(path)
    return value


def _wait_up(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            fail(
                [Problem(f"the platform at {url} did not answer within {timeout:g} s")],
                title="platform not running",
            )
        time.sleep(0.2)


def _exists_ok(call: Any) -> Any:
    """Run ``call``; a 409 (already there) is success."""
    try:
        return call()
    except ApiError as exc:
        if any("already" in p.reason or "exists" in p.reason for p in exc.problems):
            return None
        raise


def _publisher_token(client: Client, demo: Path, keys_pub: Path) -> str:
    _exists_ok(
        lambda: client.request(
            "POST",
            "/api/v1/registry/publishers",
            json={"name": PUBLISHER, "display_name": "Example apps"},
        )
    )
    _exists_ok(
        lambda: client.request(
            "POST",
            f"/api/v1/registry/publishers/{PUBLISHER}/keys",
            json={"public_key": keys_pub.read_text(), "name": "development key"},
        )
    )
    token_file = demo / "publisher.token"
    if token_file.exists():
        token = token_file.read_text().strip()
        probe = httpx.get(
            f"{client.url}/api/v1/registry/publishers/{PUBLISHER}",
            headers={"Authorization": f"Bearer {token}"},
        )
        if probe.status_code == 200:
            return token
        token_file.unlink()
    minted = client.request(
        "POST",
        f"/api/v1/registry/publishers/{PUBLISHER}/tokens",
        json={"scopes": ["com.example.*"], "name": "make up"},
    ).json()
    return _secret_file(token_file, lambda: minted["token"])


def _package(examples: Path, name: str, out_dir: Path, key: Path) -> Path:
    out = out_dir / f"{name}.apppkg"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(examples / name)
    requirements = manifest.backend.requirements if manifest.backend else []
    tmp = out_dir / f".{name}.apppkg"
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=out_dir) as wheels:
        collect_wheels(requirements, Path(wheels))
        build_package(examples / name, tmp, wheels_dir=Path(wheels))
    sign_package(tmp, load_private_key(key))
    tmp.rename(out)
    return out


def _publish(client: Client, token: str, package: Path) -> str:
    response = httpx.post(
        f"{client.url}/api/v1/registry/uploads",
        content=package.read_bytes(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
        timeout=300,
    )
    if response.status_code >= 400:
        raise ApiError(_problems_from_response(response), title=f"{package.name} not published")
    upload = response.json()
    app_id, version, state = upload["app_id"], upload["version"], upload["state"]
    if state == "pending_review":
        client.request(
            "POST",
            f"/api/v1/registry/apps/{app_id}/versions/{version}/approve",
            json={"reason": "demo: the platform's own examples"},
        )
        state = "published (approved)"
    elif upload.get("idempotent"):
        state = "already published"
    return f"{app_id} {version}: {state}"


def _org_and_user(client: Client, demo: Path) -> str:
    password = _secret_file(demo / "demo.password", lambda: secrets.token_urlsafe(12))
    _exists_ok(
        lambda: client.request("POST", "/api/v1/users", json={"name": USER, "password": password})
    )
    _exists_ok(lambda: client.request("POST", "/api/v1/orgs", json={"slug": ORG, "name": "Demo"}))
    client.request("PUT", f"/api/v1/orgs/{ORG}/members/{USER}", json={"role": "org_admin"})
    return password


def _install(client: Client, app_id: str) -> str:
    base = f"/api/v1/orgs/{ORG}/installations"
    installed = {row["app_id"]: row for row in client.get_json(base)}
    row = installed.get(app_id)
    if row is not None and row["state"] == "active":
        return f"{app_id} {row['version']}: already installed"
    accepted = client.request("POST", base, json={"app": app_id, "accept_permissions": True}).json()
    console.print(f"installing [bold]{escape(app_id)}[/] {escape(accepted['version'])}")
    job = follow(client, accepted["job_id"], show=True)
    if job["state"] != "succeeded":
        raise ApprtError(
            [Problem(**{k: p.get(k, "") for k in ("reason", "file", "location", "hint")})
             for p in job.get("error") or []]
            or [Problem(f"install of {app_id} ended {job['state']}")],
            title=f"{app_id} was not installed",
        )  # fmt: skip
    return f"{app_id} {accepted['version']}: installed"


def demo(
    url: str = UrlOption,
    data_dir: Path = typer.Option(
        Path(".apprt"), "--data-dir", envvar="APPRT_DATA_DIR", help="The platform's data dir."
    ),
    examples: Path = typer.Option(
        Path("examples"), "--examples", help="The example apps to publish and install."
    ),
    wait: float = typer.Option(60.0, "--wait", help="Seconds to wait for the platform."),
) -> None:
    """Publish and install the example apps into a demo organization (idempotent)."""
    url = url.rstrip("/")
    _wait_up(url, wait)
    token_file = data_dir / "admin.token"
    demo_dir = data_dir / "demo"
    try:
        admin = token_file.read_text().strip()
        keys = demo_dir / "keys"
        if not (keys / f"{PUBLISHER}.key").exists():
            generate_keypair(keys, PUBLISHER)
        with Client(url, admin, timeout=300) as client:
            token = _publisher_token(client, demo_dir, keys / f"{PUBLISHER}.pub")
            for name in EXAMPLES:
                package = _package(examples, name, demo_dir / "packages", keys / f"{PUBLISHER}.key")
                console.print(
                    f"  {escape(_publish(client, token, package))}", highlight=False, soft_wrap=True
                )
            password = _org_and_user(client, demo_dir)
            for name in INSTALL:
                app_id = load_manifest(examples / name).id
                console.print(
                    f"  {escape(_install(client, app_id))}", highlight=False, soft_wrap=True
                )
            apps = client.get_json(f"/api/v1/orgs/{ORG}/installations")
    except (ApprtError, OSError) as exc:
        if isinstance(exc, ApprtError):
            fail_error(exc)
        fail([Problem(str(exc), hint="check --data-dir and --examples")], title="demo failed")
    console.print()
    console.print(
        f"[bold green]apprt is running[/] on {escape(url)}/", highlight=False, soft_wrap=True
    )
    console.print(f"  organization [bold]{ORG}[/]:")
    for row in apps:
        console.print(
            f"    {escape(row['app_id'])} {escape(row['version'])} ({escape(row['health'])}): "
            f"{escape(url + row['url'])}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"  admin token: {escape(str(token_file))}", highlight=False, soft_wrap=True)
    console.print(
        f"    export APPRT_TOKEN=$(cat {escape(str(token_file))})", highlight=False, soft_wrap=True
    )
    console.print(
        f"  demo login (org admin of {ORG}): user [bold]{USER}[/], password "
        f"[bold]{escape(password)}[/] (also in {escape(str(demo_dir / 'demo.password'))})",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"    apprt login {USER} --url {escape(url)}", highlight=False, soft_wrap=True)
    sales = quote(f"/apps/{ORG}/com.example.sales-dashboard/api/summary")
    console.print(
        f'  try: curl -H "Authorization: Bearer $APPRT_TOKEN" {escape(url)}{sales}',
        highlight=False,
        soft_wrap=True,
    )
