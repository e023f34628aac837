"""Fixtures of the registry tests: a running registry, a publisher with a key and a
token, and a factory of small signed packages."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from apprt.package import build_package, generate_keypair, load_private_key, sign_package
from apprt.registry.config import RegistryConfig
from apprt.server import create_app
from apprt.settings import Settings

UPLOADS = "/api/v1/registry/uploads"


@pytest.fixture
def registry_config() -> RegistryConfig:
    return RegistryConfig(max_upload_bytes=4 << 20)


@pytest.fixture
def app_client(settings: Settings, registry_config: RegistryConfig) -> Iterator[TestClient]:
    """The whole platform (overrides the root fixture to set the registry's config)."""
    app = create_app(settings)
    app.state.registry_config = registry_config
    with TestClient(app) as client:
        yield client


@dataclass
class PublisherFixture:
    name: str
    token: str
    key: Path
    pub: Path
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_publisher(
    client: TestClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
    name: str = "example",
    scopes: tuple[str, ...] = ("com.example.*",),
) -> PublisherFixture:
    r = client.post("/api/v1/registry/publishers", json={"name": name}, headers=admin_headers)
    assert r.status_code == 201, r.text
    keys = generate_keypair(tmp_path / f"keys-{name}", name)
    r = client.post(
        f"/api/v1/registry/publishers/{name}/keys",
        json={"public_key": keys.public.read_text(), "name": "main"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    key_id = r.json()["key_id"]
    r = client.post(
        f"/api/v1/registry/publishers/{name}/tokens",
        json={"scopes": list(scopes), "name": "ci"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    return PublisherFixture(name, r.json()["token"], keys.private, keys.public, key_id)


@pytest.fixture
def publisher(
    app_client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> PublisherFixture:
    return make_publisher(app_client, admin_headers, tmp_path)


MAIN_PY = """\
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def write_app(
    root: Path,
    *,
    app_id: str = "com.example.hello",
    version: str = "1.0.0",
    publisher: str = "example",
    permissions: list[str] | None = None,
    dependencies: dict[str, str] | None = None,
    platform: str = "^1.0",
    tags: list[str] | None = None,
    description: str = "Says hello.",
    files: dict[str, str | bytes] | None = None,
    readme: bool = True,
    icon: bool = True,
    frontend: bool = False,
) -> Path:
    app = root / f"{app_id}-{version}"
    (app / "backend" / "hello").mkdir(parents=True)
    deps = "".join(f'"{k}" = "{v}"\n' for k, v in (dependencies or {}).items())
    perms = ", ".join(f'"{p}"' for p in (permissions or []))
    toml = textwrap.dedent(
        f"""\
        id = "{app_id}"
        name = "Hello"
        version = "{version}"
        description = "{description}"
        publisher = "{publisher}"
        license = "MIT"
        platform = "{platform}"
        tags = [{", ".join(f'"{t}"' for t in (tags or []))}]
        permissions = [{perms}]
        """
    )
    if icon:
        toml += 'icon = "icon.svg"\n'
        (app / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    toml += '\n[backend]\nentry = "hello.main:app"\n'
    if frontend:
        toml += '\n[frontend]\nentry = "index.js"\n'
        (app / "frontend").mkdir()
        (app / "frontend" / "index.js").write_text(
            "export function mount(el) {}\nexport function unmount(el) {}\n"
        )
    if deps:
        toml += "\n[dependencies]\n" + deps
    (app / "app.toml").write_text(toml)
    (app / "backend" / "hello" / "__init__.py").write_text("")
    (app / "backend" / "hello" / "main.py").write_text(MAIN_PY)
    if readme:
        (app / "README.md").write_text("# Hello\n")
    for rel, content in (files or {}).items():
        path = app / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return app


@pytest.fixture
def make_package(tmp_path: Path, publisher: PublisherFixture) -> Callable[..., Path]:
    """Build and sign (with the publisher's key unless ``key=None``) a small package."""
    counter = iter(range(10_000))

    def make(*, key: Path | str | None = "default", **kwargs: Any) -> Path:
        n = next(counter)
        root = tmp_path / f"build-{n}"
        app = write_app(root, **kwargs)
        out = root / "pkg.apppkg"
        build_package(app, out)
        signing = publisher.key if key == "default" else key
        if signing is not None:
            sign_package(out, load_private_key(Path(signing)))
        return out

    return make


def upload(
    client: TestClient,
    headers: dict[str, str],
    package: Path | bytes,
    **params: Any,
) -> Any:
    data = package if isinstance(package, bytes) else package.read_bytes()
    return client.post(
        UPLOADS,
        content=data,
        params=params,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
