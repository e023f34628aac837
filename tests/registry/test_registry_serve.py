"""``apprt registry serve`` runs the registry alone: accounts, the registry API, /blobs,
/tuf, /healthz and /openapi.json; not the gateway, the runtime, installs or the shell."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from apprt import __version__
from apprt.server import COMPONENTS, REGISTRY_COMPONENTS, create_app
from apprt.settings import Settings
from tests._serve import running_server

NOT_REGISTRY = ("/apps/", "/shell/", "/assets/", "/api/v1/runtime", "/api/v1/orgs/{org}/install")


def test_registry_serve_alone_on_loopback(tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    registry = running_server(
        tmp_path / "data", log, command=("registry", "serve"), inherit_apprt=False
    )
    with registry as url, httpx.Client(base_url=url) as http:
        health = http.get("/healthz").json()
        assert health == {"status": "ok", "version": __version__, "database": "ok"}
        # the registry: API, TUF, blobs, and the accounts its users log in with
        r = http.get("/api/v1/registry/search", params={"q": "anything"})
        assert r.status_code == 200 and r.json()["results"] == [], r.text
        assert http.get("/tuf/1.root.json").json()["signed"]["_type"] == "root"
        r = http.get(f"/blobs/sha256/{'0' * 64}")
        assert r.status_code == 404 and r.json()["type"] == "urn:apprt:problem:blob-not-found"
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        # not the platform: no shell at /, no gateway under /apps/
        for path in ("/", "/apps/demo/com.example.hello/", "/shell/static/shell.js"):
            r = http.get(path)
            assert r.status_code == 404, (path, r.status_code)
            assert r.json()["type"] == "about:blank"  # no route, not an app's 404
        paths = set(http.get("/openapi.json").json()["paths"])
        assert "/api/v1/registry/uploads" in paths
        assert not [p for p in paths if p.startswith(NOT_REGISTRY)]
    output = log.read_text()
    assert "apprt registry" in output
    assert "runtime.supervisor_started" not in output  # no sandboxes are run


def test_create_app_builds_the_chosen_components_only(settings: Settings) -> None:
    with TestClient(create_app(settings, components=REGISTRY_COMPONENTS)) as client:
        app = client.app
        assert not hasattr(app.state, "supervisor") and not hasattr(app.state, "shell")  # type: ignore[attr-defined]
        assert app.state.tuf is not None  # type: ignore[attr-defined]
        paths = set(client.get("/openapi.json").json()["paths"])
        assert {"/healthz", "/api/v1/registry/search", "/blobs/sha256/{digest}"} <= paths
        assert not [p for p in paths if p.startswith(NOT_REGISTRY)]
    assert set(REGISTRY_COMPONENTS) < set(COMPONENTS)
    with pytest.raises(ValueError, match=r"apprt\.nothing"):
        create_app(settings, components=("apprt.nothing",))
