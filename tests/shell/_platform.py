"""A real ``apprt serve`` on loopback for the shell's browser tests and benchmark.

:class:`ShellPlatform` starts ``python -m apprt serve`` as a subprocess on a free
loopback port (the process sandbox driver, so app backends start fast), creates the
publisher ``example`` and offers what the tests need: packing and publishing apps,
organizations, users with passwords, installs through the API. :func:`browser` starts
Debian's Chromium through Playwright (never a downloaded browser).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from apprt.manifest import load_manifest
from apprt.package import (
    build_package,
    collect_wheels,
    generate_keypair,
    load_private_key,
    sign_package,
)
from apprt.settings import Settings
from tests import _serve

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
TEST_APPS = Path(__file__).parent / "apps"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
#: Test apps that bring their own (Preact 11) copy: taken from the team-notes example.
PREACT_11 = EXAMPLES / "team-notes" / "frontend" / "vendor" / "preact"


def pack(app_dir: Path, out_dir: Path, key: Path) -> Path:
    """Pack (wheels from the local cache, offline) and sign an app directory."""
    manifest = load_manifest(app_dir)
    source = app_dir
    if (app_dir / "frontend" / "vendor.txt").is_file():
        # A test app whose vendored files are copied in at build time.
        source = out_dir / f"src-{app_dir.name}"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(app_dir, source)
        (source / "frontend" / "vendor.txt").unlink()
        shutil.copytree(PREACT_11, source / "frontend" / "vendor" / "preact")
    requirements = manifest.backend.requirements if manifest.backend else []
    out = out_dir / f"{manifest.id}-{manifest.version}.apppkg"
    with tempfile.TemporaryDirectory(prefix="apprt-wheels-") as wheels:
        collect_wheels(requirements, Path(wheels), offline=True)
        build_package(source, out, wheels_dir=Path(wheels))
    sign_package(out, load_private_key(key))
    return out


class ShellPlatform:
    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "serve.log"
        self.admin_token = "apprt_" + os.urandom(24).hex()
        defaults = {
            "APPRT_ADMIN_TOKEN": self.admin_token,
            "APPRT_RUNTIME_DRIVER": "process",
            "APPRT_ALLOW_UNTRUSTED_PROCESS_DRIVER": "true",
            "APPRT_RUNTIME_STOP_ON_SHUTDOWN": "true",
            "APPRT_IDLE_TIMEOUT_S": "0",
            "APPRT_LOG_LEVEL": "warning",
        }
        environment = _serve.environment({**defaults, **env}, inherit_apprt=False)
        self.server = _serve.ServeProcess(self.data, env=environment, log=self.log)
        self.proc = self.server.proc
        self.port = self.server.port
        self.url = self.server.url
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=60
        )
        try:
            self.server.wait_healthy()
            self.keys = generate_keypair(root / "keys", "example")
            self.publisher = self._publisher()
        except BaseException:
            self.close()
            raise

    def _publisher(self) -> dict[str, str]:
        self.ok(self.http.post("/api/v1/registry/publishers", json={"name": "example"}))
        self.ok(
            self.http.post(
                "/api/v1/registry/publishers/example/keys",
                json={"public_key": self.keys.public.read_text(), "name": "dev"},
            )
        )
        token = self.ok(
            self.http.post(
                "/api/v1/registry/publishers/example/tokens",
                json={"scopes": ["com.example.*", "com.test.*"], "name": "shell tests"},
            )
        )["token"]
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def ok(response: httpx.Response) -> Any:
        assert response.is_success, f"{response.request.method} {response.url}: {response.text}"
        return response.json() if response.content else None

    # -- apps ------------------------------------------------------------------------

    def pack(self, app_dir: Path) -> Path:
        out = self.root / "packages"
        out.mkdir(exist_ok=True)
        return pack(app_dir, out, self.keys.private)

    def publish(self, app_dir: Path) -> dict[str, Any]:
        """Pack, sign, upload and (when the registry queues it) approve an app."""
        package = self.pack(app_dir)
        body: dict[str, Any] = self.ok(
            httpx.post(
                f"{self.url}/api/v1/registry/uploads",
                content=package.read_bytes(),
                headers={**self.publisher, "Content-Type": "application/octet-stream"},
                timeout=120,
            )
        )
        upload = body.get("upload", body)
        if upload.get("state") == "pending_review":
            self.approve(upload["app_id"], upload["version"])
        return upload

    def upload_for_review(self, app_dir: Path) -> dict[str, Any]:
        package = self.pack(app_dir)
        body: dict[str, Any] = self.ok(
            httpx.post(
                f"{self.url}/api/v1/registry/uploads",
                content=package.read_bytes(),
                headers={**self.publisher, "Content-Type": "application/octet-stream"},
                timeout=120,
            )
        )
        return body.get("upload", body)

    def approve(self, app_id: str, version: str) -> None:
        self.ok(
            self.http.post(
                f"/api/v1/registry/apps/{app_id}/versions/{version}/approve",
                json={"reason": "shell tests"},
            )
        )

    def install(self, org: str, app_id: str, timeout: float = 120) -> dict[str, Any]:
        """Install through the API (consenting to everything) and wait for the job."""
        accepted = self.ok(
            self.http.post(
                f"/api/v1/orgs/{org}/installations",
                json={"app": app_id, "accept_permissions": True},
            )
        )
        return self.wait_job(accepted["job_id"], timeout)

    def uninstall(self, org: str, app_id: str, timeout: float = 60) -> dict[str, Any]:
        accepted = self.ok(self.http.delete(f"/api/v1/orgs/{org}/installations/{app_id}"))
        return self.wait_job(accepted["job_id"], timeout)

    def wait_job(self, job_id: int, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.ok(self.http.get(f"/api/v1/jobs/{job_id}"))
            if job["state"] in ("succeeded", "rolled_back", "failed"):
                assert job["state"] == "succeeded", job
                return job
            assert time.monotonic() < deadline, f"job {job_id} not done: {job}"
            time.sleep(0.05)

    # -- people ----------------------------------------------------------------------

    def org(self, slug: str, name: str | None = None) -> str:
        self.ok(self.http.post("/api/v1/orgs", json={"slug": slug, "name": name or slug}))
        return slug

    def user(
        self, name: str, *, org: str | None = None, role: str = "member", admin: bool = False
    ) -> str:
        self.ok(
            self.http.post(
                "/api/v1/users", json={"name": name, "password": PASSWORD, "platform_admin": admin}
            )
        )
        if org is not None:
            self.ok(self.http.put(f"/api/v1/orgs/{org}/members/{name}", json={"role": role}))
        return name

    def metrics(self) -> str:
        return self.http.get("/metrics").text

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data)

    def tree(self, digest: str) -> Path:
        return self.data / "install" / "apps" / digest

    def close(self) -> None:
        self.http.close()
        self.server.close()
        from tests.runtime._platform import kill_recorded

        with contextlib.suppress(Exception):
            kill_recorded(self.settings)


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def login(page: Any, url: str, name: str) -> None:
    page.goto(f"{url}/#/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("header.topbar")
