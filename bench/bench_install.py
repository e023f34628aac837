"""Installation: a published package to a healthy, routed app, through the whole job.

Against a real ``apprt serve`` (a subprocess, the runtime's default sandbox driver,
SQLite and a local blob store in a temporary directory) with the three examples
published through the registry's HTTP API (signed, approved). Each sample is one
organization installing one app: ``POST /api/v1/orgs/{org}/installations``, the job's
ten steps (resolution, compatibility, dependencies, allocation, sandbox, TUF-verified
download, deployment, configuration, health check, activation) followed on its event
stream, then the app's health path answering through the gateway. sales-dashboard's
dependency (crm-connector) is installed in the organization first, so each sample
installs one app.

* ``install_<app>_p50``: p50 over several organizations (issue 5's target: <= 1 s); the
  first of them is a *cold* install (unpack, build the Python environment) and is
  also reported alone as ``install_<app>_cold``; the others reuse the unpacked tree
  and environment (content-addressed, shared by every organization);
* ``install_chain_10``: one job installing a chain of 10 apps (each depending on the
  previous), dependencies first, all healthy (reported).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tests._serve import environment, serving
from tests.install.conftest import make_app

from apprt.manifest import load_manifest
from apprt.package import (
    build_package,
    collect_wheels,
    generate_keypair,
    load_private_key,
    sign_package,
)
from bench._harness import Figure, percentile

EXAMPLES = Path(__file__).parents[1] / "examples"
ORDER = ["crm-connector", "team-notes", "sales-dashboard"]
SAMPLES = 7
CHAIN = 10
TARGET_S = 1.0


@contextlib.contextmanager
def _serve(data: Path) -> Iterator[str]:
    env = environment(
        {"APPRT_RUNTIME_STOP_ON_SHUTDOWN": "true", "APPRT_IDLE_TIMEOUT_S": "0"},
        inherit_apprt=False,
    )
    command = ("serve", "--log-level", "warning")
    with serving(data, env=env, log=data.parent / "serve.log", command=command) as server:
        yield server.url


def _pack(app_dir: Path, out: Path, key: Path) -> Path:
    manifest = load_manifest(app_dir)
    requirements = manifest.backend.requirements if manifest.backend else []
    with tempfile.TemporaryDirectory() as wheels:
        collect_wheels(requirements, Path(wheels))
        build_package(app_dir, out, wheels_dir=Path(wheels))
    sign_package(out, load_private_key(key))
    return out


def _chain_app(root: Path, n: int, key: Path) -> Path:
    """Link ``n`` of a dependency chain: a tiny healthy app needing link ``n - 1``."""
    return make_app(
        root,
        f"com.example.chain-{n}",
        key=key,
        dependencies={f"com.example.chain-{n - 1}": "^1.0"} if n else None,
        extra="\n[resources]\nmemory_mb = 64\nstorage_mb = 0\n",
    )


class Bench:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        self.publisher: dict[str, str] = {}

    def setup_publisher(self, public_key: Path) -> None:
        self.http.post("/api/v1/registry/publishers", json={"name": "example"})
        self.http.post(
            "/api/v1/registry/publishers/example/keys",
            json={"public_key": public_key.read_text(), "name": "bench"},
        )
        token = self.http.post(
            "/api/v1/registry/publishers/example/tokens",
            json={"scopes": ["com.example.*"], "name": "bench"},
        ).json()["token"]
        self.publisher = {"Authorization": f"Bearer {token}"}

    def publish(self, package: Path) -> None:
        r = httpx.post(
            f"{self.base}/api/v1/registry/uploads",
            content=package.read_bytes(),
            headers={**self.publisher, "Content-Type": "application/octet-stream"},
            timeout=120,
        )
        r.raise_for_status()
        upload = r.json()
        if upload["state"] == "pending_review":
            self.http.post(
                f"/api/v1/registry/apps/{upload['app_id']}/versions/{upload['version']}/approve",
                json={"reason": "bench"},
            ).raise_for_status()

    def org(self, slug: str) -> str:
        self.http.post("/api/v1/orgs", json={"slug": slug}).raise_for_status()
        return slug

    def install(self, org: str, app_id: str, health: str = "/healthz") -> float:
        """Seconds from the install request to the app answering through the gateway."""
        started = time.perf_counter()
        r = self.http.post(
            f"/api/v1/orgs/{org}/installations", json={"app": app_id, "accept_permissions": True}
        )
        r.raise_for_status()
        job_id = r.json()["job_id"]
        with self.http.stream("GET", f"/api/v1/jobs/{job_id}/events") as events:
            for line in events.iter_lines():
                if line.startswith("data:") and '"job_' in line:
                    kind = json.loads(line[5:])["type"]
                    if kind in ("job_succeeded", "job_rolled_back", "job_failed"):
                        break
        job: dict[str, Any] = self.http.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] != "succeeded":
            raise RuntimeError(f"install of {app_id} in {org}: {job['state']} {job['error']}")
        answer = self.http.get(f"/apps/{org}/{app_id}{health}")
        if answer.status_code != 200:
            raise RuntimeError(f"{app_id} in {org} answers {answer.status_code}")
        return time.perf_counter() - started


def run() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        root = Path(tmp)
        keys = generate_keypair(root / "keys", "example")
        packages = {n: _pack(EXAMPLES / n, root / f"{n}.apppkg", keys.private) for n in ORDER}
        chain = [_chain_app(root, n, keys.private) for n in range(CHAIN)]
        data = root / "data"
        try:
            with _serve(data) as base:
                bench = Bench(base, (data / "admin.token").read_text().strip())
                bench.setup_publisher(keys.public)
                for name in ORDER:
                    bench.publish(packages[name])
                crm = load_manifest(EXAMPLES / "crm-connector").id
                for name in ORDER:
                    app_id = load_manifest(EXAMPLES / name).id
                    samples = []
                    for i in range(SAMPLES):
                        org = bench.org(f"{name}-{i}")
                        if name == "sales-dashboard":
                            bench.install(org, crm)
                        samples.append(bench.install(org, app_id))
                    p50 = percentile(samples, 50)
                    figures.append(
                        Figure(
                            f"install_{name.replace('-', '_')}_p50",
                            f"install {name}: request to healthy and routed (gateway answers), "
                            f"p50 of {SAMPLES} orgs, the first cold",
                            p50 * 1000,
                            "ms",
                            f"<= {TARGET_S * 1000:.0f} ms",
                            p50 <= TARGET_S,
                        )
                    )
                    figures.append(
                        Figure(
                            f"install_{name.replace('-', '_')}_cold",
                            f"install {name} first on the node (unpack, build its environment)",
                            samples[0] * 1000,
                            "ms",
                            "",
                        )
                    )
                for package in chain:
                    bench.publish(package)
                seconds = bench.install(bench.org("chain"), f"com.example.chain-{CHAIN - 1}")
                figures.append(
                    Figure(
                        "install_chain_10",
                        f"one install job of a {CHAIN}-app dependency chain, all healthy",
                        seconds * 1000,
                        "ms",
                        "",
                    )
                )
        finally:
            _cleanup(data)
    return figures


def _cleanup(data: Path) -> None:
    """Kill any sandbox left (by the pid its handle names) and unmount data volumes."""
    with contextlib.suppress(Exception):
        from sqlalchemy import select

        from apprt.db.engine import make_engine, session_factory, session_scope
        from apprt.runtime.drivers import _volume, bwrap
        from apprt.runtime.models import Instance
        from apprt.settings import Settings

        settings = Settings(data_dir=data)
        engine = make_engine(settings)
        with session_scope(session_factory(engine)) as session:
            rows = list(session.scalars(select(Instance)))
        engine.dispose()
        for row in rows:
            if row.handle:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(row.handle["pid"]), signal.SIGKILL)
        with contextlib.suppress(Exception):
            bwrap.from_settings(settings).shutdown()
        for row in rows:
            with contextlib.suppress(Exception):
                _volume.unmount(Path(row.data_dir))


if __name__ == "__main__":
    for fig in run():
        print(f"{fig.name}: {fig.value:.1f} {fig.unit} ({fig.metric})")
