"""The registry and the TUF repository together, in-process: a package uploaded through
the registry's API is verified by a stock ngclient (over the ASGI app, through a
fetcher), and unpublishing removes it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from tests.registry.conftest import PublisherFixture, upload

BASE = "http://testserver"


class AppFetcher(FetcherInterface):
    """ngclient's downloads served by the in-process app instead of a socket."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def _fetch(self, url: str) -> Iterator[bytes]:
        response: httpx.Response = self.client.get(url.removeprefix(BASE))
        if response.status_code != 200:
            raise DownloadHTTPError(f"HTTP {response.status_code} for {url}", response.status_code)
        yield response.content


def updater(client: TestClient, tmp_path: Path) -> Updater:
    metadata = tmp_path / "client"
    metadata.mkdir(exist_ok=True)
    root = client.get("/tuf/1.root.json").content
    return Updater(
        metadata_dir=str(metadata),
        metadata_base_url=f"{BASE}/tuf/",
        target_base_url=f"{BASE}/tuf/targets/",
        target_dir=str(tmp_path / "downloads"),
        fetcher=AppFetcher(client),
        bootstrap=root,
    )


def test_a_package_published_through_the_registry_is_verified_by_ngclient(
    app_client: TestClient,
    publisher: PublisherFixture,
    admin_headers: dict[str, str],
    make_package: Callable[..., Path],
    tmp_path: Path,
) -> None:
    package = make_package(app_id="com.example.hello", version="1.0.0")
    r = upload(app_client, publisher.headers, package)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "published"

    client = updater(app_client, tmp_path)
    client.refresh()
    info = client.get_targetinfo("com.example.hello/1.0.0.apppkg")
    assert info is not None
    assert info.hashes == {"sha256": r.json()["sha256"]}
    path = client.download_target(info, str(tmp_path / "hello.apppkg"))
    assert Path(path).read_bytes() == package.read_bytes()

    # Unpublished (within the window): gone from the signed targets.
    r = app_client.post(
        "/api/v1/registry/apps/com.example.hello/versions/1.0.0/unpublish",
        json={"reason": "mistake"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    client = updater(app_client, tmp_path)
    client.refresh()
    assert client.get_targetinfo("com.example.hello/1.0.0.apppkg") is None
