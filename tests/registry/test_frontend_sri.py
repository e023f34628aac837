"""The version detail lists every frontend asset with its SRI string, from the package's
MANIFEST: it equals ``sha256-`` + base64(sha256(bytes)) of the file in the package."""

from __future__ import annotations

import base64
import gzip
import hashlib
import tarfile
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from apprt.blobs.local import LocalBlobStore
from tests.registry.conftest import PublisherFixture, upload

VERSION = "/api/v1/registry/apps/com.example.hello/versions/1.0.0"
STYLE = b"body { color: #123456; }\n"
LOGO = bytes(range(256)) * 7  # binary, not UTF-8


def _members(package: Path) -> dict[str, bytes]:
    """Every file of the package as the archive holds it (independent of apprt's reader)."""
    with tarfile.open(package, "r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_version_detail_has_the_sri_of_each_frontend_asset(
    app_client: TestClient,
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
) -> None:
    package = make_package(
        frontend=True,
        files={"frontend/style.css": STYLE.decode(), "frontend/img/logo.bin": LOGO},
    )
    r = upload(app_client, publisher.headers, package)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "published", r.text

    r = app_client.get(VERSION)
    assert r.status_code == 200, r.text
    assets = {a["path"]: a for a in r.json()["frontend_assets"]}

    members = _members(package)
    frontend = {p: b for p, b in members.items() if p.startswith("frontend/")}
    assert (
        set(assets)
        == set(frontend)
        == {
            "frontend/index.js",
            "frontend/style.css",
            "frontend/img/logo.bin",
        }
    )
    digest = r.json()["sha256"]
    for path, data in frontend.items():
        expected = "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert assets[path]["integrity"] == expected
        assert assets[path]["size"] == len(data)
        assert assets[path]["sha256"] == hashlib.sha256(data).hexdigest()
        # the whole platform runs the shell: its content-addressed URL for the file
        rel = path.removeprefix("frontend/")
        assert assets[path]["url"] == f"/assets/sha256/{digest}/{rel}"

    # lists stay light: the assets are only in the one-version detail
    listed = app_client.get("/api/v1/registry/apps/com.example.hello/versions").json()
    assert "frontend_assets" not in listed[0]


def test_a_version_without_frontend_has_an_empty_list(
    app_client: TestClient, publisher: PublisherFixture, make_package: Callable[..., Path]
) -> None:
    assert upload(app_client, publisher.headers, make_package()).status_code == 201
    r = app_client.get(VERSION)
    assert r.status_code == 200, r.text
    assert r.json()["frontend_assets"] == []


def test_the_openapi_document_describes_frontend_assets(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    ok = spec["paths"]["/api/v1/registry/apps/{app_id}/versions/{version}"]["get"]["responses"]
    ref = ok["200"]["content"]["application/json"]["schema"]["$ref"]
    detail = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert "frontend_assets" in detail["properties"]
    asset = spec["components"]["schemas"]["FrontendAssetOut"]
    assert {"path", "size", "sha256", "integrity", "url"} <= set(asset["properties"])


def test_a_corrupt_stored_package_is_a_clear_500_not_assets(
    app_client: TestClient, publisher: PublisherFixture, make_package: Callable[..., Path]
) -> None:
    """The assets come from a verified read of the stored package: a blob altered on
    disk gives a problem+json naming it, never SRI strings of altered bytes."""
    r = upload(app_client, publisher.headers, make_package(frontend=True))
    assert r.status_code == 201, r.text
    digest = r.json()["sha256"]
    store: LocalBlobStore = app_client.app.state.blob_store  # type: ignore[attr-defined]
    path = store.path_of(digest)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[raw.index(b"export function mount")] ^= 0x20  # "e" -> "E": same size, other bytes
    path.chmod(0o644)
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))

    r = app_client.get(VERSION)
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:apprt:problem:stored-blob-corrupt"
    assert digest in body["problems"][0]["reason"]
