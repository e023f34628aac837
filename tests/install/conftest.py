"""Fixtures of the install tests: the examples packed and signed once, a real platform
(uvicorn in a thread, the runtime's default sandbox driver) with them published
through the registry's HTTP API, and helpers to install, wait and look at an org."""

from __future__ import annotations

import contextlib
import json
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from apprt.install.models import Installation
from apprt.package import build_package, generate_keypair, load_private_key, sign_package
from apprt.runtime.models import Instance, Route
from apprt.settings import Settings
from tests.conftest import CliResult
from tests.runtime._platform import Platform, kill_recorded, platform_settings

EXAMPLES = Path(__file__).parents[2] / "examples"
ORDER = ["crm-connector", "team-notes", "sales-dashboard"]
CRM = "com.example.crm-connector"
SALES = "com.example.sales-dashboard"
NOTES = "com.example.team-notes"
#: The sandbox driver the runtime uses by default (Settings().runtime_driver).
DRIVER = Settings.model_fields["runtime_driver"].default


@dataclass
class Packages:
    keys: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def public_key(self) -> Path:
        return self.keys / "example.pub"

    @property
    def private_key(self) -> Path:
        return self.keys / "example.key"


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """The three examples packed (wheels from the cache, or PyPI once) and signed."""
    from typer.testing import CliRunner

    from apprt.cli import cli

    root = tmp_path_factory.mktemp("packages")
    keys = generate_keypair(root / "keys", "example")
    result = Packages(keys=keys.private.parent)
    runner = CliRunner()
    for name in ORDER:
        out = root / f"{name}.apppkg"
        packed = runner.invoke(
            cli, ["app", "pack", str(EXAMPLES / name), "-o", str(out)]
        )  # the wheel cache when it has the pins, else PyPI (a first run on a new machine)
        assert packed.exit_code == 0, f"packing {name} failed: {packed.stdout[-300:]}"
        sign_package(out, load_private_key(keys.private))
        result.files[name] = out
    return result


def make_app(
    root: Path,
    app_id: str,
    version: str = "1.0.0",
    *,
    key: Path,
    main: str | None = None,
    permissions: list[str] | None = None,
    dependencies: dict[str, str] | None = None,
    platform: str = "^1.0",
    extra: str = "",
    frontend_only: bool = False,
) -> Path:
    """A small signed package (no wheels) for the bad-input and benchmark apps."""
    app = root / f"{app_id}-{version}"
    if app.exists():
        shutil.rmtree(app)
    module = app_id.rsplit(".", 1)[-1].replace("-", "_")
    deps = "".join(f'"{k}" = "{v}"\n' for k, v in (dependencies or {}).items())
    perms = ", ".join(f'"{p}"' for p in (permissions or []))
    toml = textwrap.dedent(
        f"""\
        id = "{app_id}"
        name = "Test app"
        version = "{version}"
        description = "An app for the install tests."
        publisher = "example"
        license = "MIT"
        platform = "{platform}"
        icon = "icon.svg"
        permissions = [{perms}]
        """
    )
    (app / "frontend").mkdir(parents=True)
    (app / "frontend" / "index.js").write_text(
        "export function mount(el) {}\nexport function unmount(el) {}\n"
    )
    if not frontend_only:
        toml += f'\n[backend]\nentry = "{module}.main:app"\n'
        (app / "backend" / module).mkdir(parents=True)
        (app / "backend" / module / "__init__.py").write_text("")
        (app / "backend" / module / "main.py").write_text(main or HEALTHY_APP)
    toml += '\n[frontend]\nentry = "index.js"\n'
    if deps:
        toml += "\n[dependencies]\n" + deps
    toml += extra
    (app / "app.toml").write_text(toml)
    (app / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    (app / "README.md").write_text("# Test app\n")
    out = root / f"{app_id}-{version}.apppkg"
    build_package(app, out)
    sign_package(out, load_private_key(key))
    return out


HEALTHY_APP = """\
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


class InstallPlatform:
    """A running platform (uvicorn in a thread) with a publisher ``example``."""

    def __init__(
        self, tmp_path: Path, packages: Packages, *, publisher: bool = True, **overrides: Any
    ) -> None:
        settings = platform_settings(tmp_path, DRIVER, **overrides)
        self.platform = Platform(settings)
        self.settings = settings
        self.url = self.platform.url
        self.headers = self.platform.headers
        self.packages = packages
        self.app = self.platform.app
        # The registry is this platform, on the port uvicorn picked.
        self.app.state.install.config.registry_url = self.url
        self.app.state.install.config.health_timeout_s = 10
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=60)
        self.publisher_headers = self._publisher() if publisher else {}

    def _publisher(self) -> dict[str, str]:
        r = self.http.post("/api/v1/registry/publishers", json={"name": "example"})
        assert r.status_code == 201, r.text
        r = self.http.post(
            "/api/v1/registry/publishers/example/keys",
            json={"public_key": self.packages.public_key.read_text(), "name": "dev"},
        )
        assert r.status_code == 201, r.text
        r = self.http.post(
            "/api/v1/registry/publishers/example/tokens",
            json={"scopes": ["com.example.*"], "name": "tests"},
        )
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def publish(self, package: Path) -> dict[str, Any]:
        r = httpx.post(
            f"{self.url}/api/v1/registry/uploads",
            content=package.read_bytes(),
            headers={**self.publisher_headers, "Content-Type": "application/octet-stream"},
            timeout=60,
        )
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        upload = body.get("upload", body)
        if upload.get("state") == "pending_review":
            app_id, version = upload["app_id"], upload["version"]
            a = self.http.post(
                f"/api/v1/registry/apps/{app_id}/versions/{version}/approve",
                json={"reason": "tests"},
            )
            assert a.status_code == 200, a.text
        return body

    def publish_examples(self, names: list[str] = ORDER) -> None:
        for name in names:
            self.publish(self.packages.files[name])

    def org(self, slug: str, **quotas: int) -> str:
        r = self.http.post("/api/v1/orgs", json={"slug": slug, **quotas})
        assert r.status_code == 201, r.text
        return slug

    def install(self, org: str, app: str, **body: Any) -> httpx.Response:
        body.setdefault("accept_permissions", True)
        return self.http.post(f"/api/v1/orgs/{org}/installations", json={"app": app, **body})

    def wait(self, job_id: int, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.http.get(f"/api/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "rolled_back", "failed"):
                self.platform._remember_pids()
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} not done: {json.dumps(job, indent=1)}")
            time.sleep(0.05)

    def install_and_wait(self, org: str, app: str, **body: Any) -> dict[str, Any]:
        r = self.install(org, app, **body)
        assert r.status_code == 202, r.text
        return self.wait(r.json()["job_id"])

    def uninstall_and_wait(self, org: str, app: str, **params: Any) -> dict[str, Any]:
        r = self.http.delete(f"/api/v1/orgs/{org}/installations/{app}", params=params)
        assert r.status_code == 202, r.text
        return self.wait(r.json()["job_id"])

    def snapshot(self, org: str) -> dict[str, Any]:
        """Everything an organization has: rows, routes, live instances, files."""
        return org_snapshot(self.settings, org, self.app.state.supervisor)

    def close(self) -> None:
        self.http.close()
        self.platform.close()


def org_snapshot(settings: Settings, org: str, supervisor: Any = None) -> dict[str, Any]:
    from apprt.accounts.models import Organization
    from apprt.db.engine import make_engine, session_factory, session_scope

    engine = make_engine(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            org_row = session.scalars(select(Organization).where(Organization.slug == org)).one()
            rows = sorted(
                (r.app_id, r.version, r.state.value)
                for r in session.scalars(
                    select(Installation).where(Installation.org_id == org_row.id)
                )
            )
            routes = sorted(
                r.app_id for r in session.scalars(select(Route).where(Route.org == org))
            )
            instances = sorted(
                (i.app_id, i.state.value)
                for i in session.scalars(
                    select(Instance).where(Instance.org == org, Instance.removed_at.is_(None))
                )
            )
    finally:
        engine.dispose()
    install = settings.data_dir / "install"
    staging = install / "staging"
    return {
        "installations": rows,
        "routes": routes,
        "instances": instances,
        "staging": sorted(p.name for p in staging.iterdir()) if staging.is_dir() else [],
        "memory": sorted((supervisor.routes if supervisor else {}).keys()),
    }


def live_sandboxes(settings: Settings) -> set[str]:
    """Ids of this platform's instances that have a process running now (found by
    their cgroup, which the sandbox driver names after the instance), removed ones
    included: a leaked sandbox shows up here."""
    from apprt.db.engine import make_engine, session_factory, session_scope

    engine = make_engine(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            ids = set(session.scalars(select(Instance.id)))
    finally:
        engine.dispose()
    found: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            groups = (proc / "cgroup").read_text()
        except OSError:
            continue
        found |= {i for i in ids if f"/{i}" in groups}
    return found


def trees(settings: Settings) -> set[str]:
    apps = settings.data_dir / "install" / "apps"
    return (
        {p.name for p in apps.iterdir() if not p.name.startswith(".")} if apps.is_dir() else set()
    )


def envs(settings: Settings) -> set[str]:
    root = settings.data_dir / "install" / "envs"
    return (
        {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.is_dir() else set()
    )


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, packages: Packages
) -> Iterator[InstallPlatform]:
    """One platform for a test module, the examples published (tests use their own orgs)."""
    p = InstallPlatform(tmp_path_factory.mktemp("platform"), packages)
    try:
        p.publish_examples()
        yield p
    finally:
        with contextlib.suppress(Exception):
            p.close()
        kill_recorded(p.settings, p.platform.pids)


CliRun = Callable[..., CliResult]


NOTEBOOK_APP = """\
import os
from pathlib import Path

DATA = Path(os.environ.get("APPRT_APP_DATA", "."))


async def _reply(send, status, body=b""):
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, method = scope["path"], scope["method"]
    if path == "/healthz":
        await _reply(send, 200, b"ok")
    elif path == "/note" and method == "POST":
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        (DATA / "note.txt").write_bytes(body)
        await _reply(send, 201, body)
    elif path == "/note":
        note = DATA / "note.txt"
        await _reply(send, 200, note.read_bytes()) if note.exists() else await _reply(send, 404)
    else:
        await _reply(send, 404)
"""

UNHEALTHY_APP = HEALTHY_APP.replace("200", "500")
CRASHING_APP = "raise RuntimeError('this app cannot start')\n"


@dataclass
class ExtraApps:
    """Small apps published next to the examples for the tests that need them."""

    notebook: str = "com.example.notebook"
    lib: str = "com.example.lib"
    old_user: str = "com.example.old-user"
    new_user: str = "com.example.new-user"
    unhealthy: str = "com.example.unhealthy"
    crashing: str = "com.example.crashing"
    static: str = "com.example.static-page"
    tampered: str = "com.example.tampered"


def publish_test_apps(platform: InstallPlatform, root: Path) -> ExtraApps:
    apps = ExtraApps()
    key = platform.packages.private_key
    for package in (
        make_app(root, apps.notebook, key=key, main=NOTEBOOK_APP, permissions=["state"]),
        make_app(root, apps.lib, "1.0.0", key=key),
        make_app(root, apps.lib, "2.0.0", key=key),
        make_app(root, apps.old_user, key=key, dependencies={apps.lib: "=1.0.0"}),
        make_app(root, apps.new_user, key=key, dependencies={apps.lib: "^2.0"}),
        make_app(root, apps.unhealthy, key=key, main=UNHEALTHY_APP),
        make_app(root, apps.crashing, key=key, main=CRASHING_APP),
        make_app(root, apps.static, key=key, frontend_only=True),
        make_app(root, apps.tampered, key=key),
    ):
        platform.publish(package)
    return apps


@pytest.fixture(scope="module")
def extra_apps(platform: InstallPlatform, tmp_path_factory: pytest.TempPathFactory) -> ExtraApps:
    return publish_test_apps(platform, tmp_path_factory.mktemp("test-apps"))


@pytest.fixture
def cli_as(platform: InstallPlatform, apprt: CliRun) -> CliRun:
    """``apprt ...`` against the platform with the admin's token."""

    def run(*args: object, input: str | None = None) -> CliResult:
        return apprt(*args, "--url", platform.url, "--token", platform.platform.token, input=input)

    return run
