"""Publishing: upload + every validation check + publication of a 1 MB package.

Issue 3's target: p50 <= 1 s. Measured through the HTTP API in process (FastAPI's
TestClient, the whole platform app, SQLite and a local blob store in a temporary
directory): the request streams the package into the blob store, runs the eleven
checks (bandit included) on a temporary extraction and commits the version. Each
sample uploads a new version (new bytes), as a publisher would.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from pathlib import Path

import structlog
from fastapi.testclient import TestClient

from apprt.package import build_package, generate_keypair, load_private_key, sign_package
from apprt.server import create_app
from apprt.settings import Settings
from bench._harness import Figure, percentile

EXAMPLE = Path(__file__).parents[1] / "examples" / "team-notes"
REPEAT = 15
PACKAGE_BYTES = 1 << 20  # 1 MiB
API = "/api/v1/registry"


def _packages(root: Path, key: Path, count: int) -> list[Path]:
    """``count`` signed packages of team-notes (versions 2.1.0, 2.2.0, ...), each at
    least :data:`PACKAGE_BYTES` as an ``.apppkg``: the filler is random bytes (images,
    fonts: what gzip cannot shrink), so the archive, not just its content, is 1 MB."""
    rng = random.Random(7)  # reproducible filler, not security
    app = root / "app"
    shutil.copytree(EXAMPLE, app)
    assets = app / "frontend" / "assets"
    assets.mkdir(parents=True)
    for i in range(40):
        (assets / f"image-{i:02d}.bin").write_bytes(rng.randbytes(PACKAGE_BYTES // 40))
    toml = (app / "app.toml").read_text()
    out = []
    for n in range(count):
        (app / "app.toml").write_text(toml.replace('version = "2.0.1"', f'version = "2.{n + 1}.0"'))
        pkg = root / f"team-notes-{n}.apppkg"
        build_package(app, pkg)
        sign_package(pkg, load_private_key(key))
        out.append(pkg)
    return out


def run() -> list[Figure]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = generate_keypair(root / "keys", "bench")
        packages = _packages(root, keys.private, REPEAT + 1)
        size = packages[0].stat().st_size
        assert size >= PACKAGE_BYTES, f"the package is {size} bytes, under {PACKAGE_BYTES}"
        settings = Settings(data_dir=root / "data")
        with TestClient(create_app(settings)) as client:
            admin = {"Authorization": f"Bearer {settings.admin_token_path.read_text().strip()}"}
            client.post(f"{API}/publishers", json={"name": "example"}, headers=admin)
            client.post(
                f"{API}/publishers/example/keys",
                json={"public_key": keys.public.read_text()},
                headers=admin,
            )
            scopes = {"scopes": ["com.example.*"]}
            minted = client.post(f"{API}/publishers/example/tokens", json=scopes, headers=admin)
            token = minted.json()["token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
            }
            samples = []
            states = set()
            for i, pkg in enumerate(packages):
                data = pkg.read_bytes()
                start = time.perf_counter()
                response = client.post(f"{API}/uploads", content=data, headers=headers)
                elapsed = time.perf_counter() - start
                assert response.status_code == 201, response.text
                states.add(response.json()["state"])
                if i:
                    samples.append(elapsed)
                else:  # a warm-up; as a first version with permissions, it is reviewed
                    client.post(
                        f"{API}/apps/com.example.team-notes/versions/2.1.0/approve",
                        headers=admin,
                    )
            assert states == {"published", "pending_review"}, states
    p50 = percentile(samples, 50)
    return [
        Figure(
            "publish_1mb_p50",
            f"upload + validate (11 checks) + publish a {size / 1e6:.1f} MB package "
            "over the HTTP API, p50",
            p50 * 1000,
            "ms",
            "<= 1000 ms",
            p50 <= 1.0,
        )
    ]
