"""``GET``/``HEAD /blobs/sha256/{digest}``: immutable caching, conditional and range
requests, streaming, problem+json errors; and SRI strings."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import BinaryIO

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from apprt.blobs.local import LocalBlobStore
from apprt.registry import distribution
from apprt.registry.distribution import CACHE_IMMUTABLE, blob_response, sri, sri_from_digest

DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def blob(app_client: TestClient) -> str:
    store: LocalBlobStore = app_client.app.state.blob_store  # type: ignore[attr-defined]
    return store.put_bytes(DATA).digest


def url(digest: str) -> str:
    return f"/blobs/sha256/{digest}"


def test_get_serves_the_blob_as_immutable(app_client: TestClient, blob: str) -> None:
    r = app_client.get(url(blob))
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["etag"] == f'"{blob}"'
    assert r.headers["cache-control"] == CACHE_IMMUTABLE
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["content-type"] == "application/octet-stream"


def test_head_has_the_headers_and_no_body(app_client: TestClient, blob: str) -> None:
    r = app_client.head(url(blob))
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["etag"] == f'"{blob}"'


@pytest.mark.parametrize("header", ['"{d}"', 'W/"{d}"', '"other", "{d}"', "*"])
def test_if_none_match_is_304(app_client: TestClient, blob: str, header: str) -> None:
    r = app_client.get(url(blob), headers={"If-None-Match": header.format(d=blob)})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == f'"{blob}"'
    assert r.headers["cache-control"] == CACHE_IMMUTABLE


def test_if_none_match_other_is_200(app_client: TestClient, blob: str) -> None:
    r = app_client.get(url(blob), headers={"If-None-Match": '"' + "0" * 64 + '"'})
    assert r.status_code == 200
    assert r.content == DATA


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, len(DATA) - 1),
        ("bytes=-5", len(DATA) - 5, len(DATA) - 1),
        ("bytes=10000-999999", 10000, len(DATA) - 1),  # clamped to the end
        ("bytes=-999999", 0, len(DATA) - 1),
        (" bytes = 5 - 5 ", 5, 5),
    ],
)
def test_single_range_is_206(
    app_client: TestClient, blob: str, header: str, first: int, last: int
) -> None:
    r = app_client.get(url(blob), headers={"Range": header})
    assert r.status_code == 206
    assert r.content == DATA[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert r.headers["content-length"] == str(last - first + 1)
    assert r.headers["etag"] == f'"{blob}"'


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=abc", "items=0-1", "bytes=9-3"])
def test_ranges_we_do_not_serve_are_ignored(app_client: TestClient, blob: str, header: str) -> None:
    r = app_client.get(url(blob), headers={"Range": header})
    assert r.status_code == 200
    assert r.content == DATA


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=99999-100000", "bytes=-0"])
def test_unsatisfiable_range_is_416_problem(app_client: TestClient, blob: str, header: str) -> None:
    r = app_client.get(url(blob), headers={"Range": header})
    assert r.status_code == 416
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["content-range"] == f"bytes */{len(DATA)}"
    body = r.json()
    assert body["type"] == "urn:apprt:problem:range-not-satisfiable"
    assert body["problems"][0]["location"] == "Range"


def test_if_range_mismatch_serves_everything(app_client: TestClient, blob: str) -> None:
    r = app_client.get(url(blob), headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status_code == 200
    assert r.content == DATA
    r = app_client.get(url(blob), headers={"Range": "bytes=0-9", "If-Range": f'"{blob}"'})
    assert r.status_code == 206


def test_unknown_digest_is_404_problem(app_client: TestClient) -> None:
    for method in ("GET", "HEAD"):
        r = app_client.request(method, url("0" * 64))
        assert r.status_code == 404
    r = app_client.get(url("0" * 64), headers={"If-None-Match": "*"})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:apprt:problem:blob-not-found"


@pytest.mark.parametrize("digest", ["abc", "A" * 64, "g" * 64, "0" * 65, "..%2F..%2Fetc"])
def test_malformed_digest_is_400_problem(app_client: TestClient, digest: str) -> None:
    r = app_client.get(url(digest))
    assert r.status_code in (400, 404)  # a path separator never reaches the route
    if r.status_code == 400:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["problems"][0]["location"] == "digest"


def test_malformed_digest_is_400(app_client: TestClient) -> None:
    r = app_client.get(url("Z" * 64))
    assert r.status_code == 400
    assert r.json()["type"] == "urn:apprt:problem:blob"


def test_documented_in_openapi(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    assert set(paths["/blobs/sha256/{digest}"]) == {"get", "head"}


class _CountingFile(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        assert size is not None and 0 < size <= distribution.CHUNK_SIZE, size
        self.largest_read = max(self.largest_read, size)
        return super().read(size)


class _Store:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.file = _CountingFile(data)

    def open(self, digest: str) -> BinaryIO:
        return self.file

    def size(self, digest: str) -> int:
        return len(self.data)


def test_bodies_are_streamed_in_chunks() -> None:
    data = b"x" * (3 * distribution.CHUNK_SIZE + 17)
    store = _Store(data)
    app = FastAPI()

    @app.get("/b")
    def route(request: Request) -> object:
        return blob_response(request, store, "f" * 64)  # type: ignore[arg-type]

    with TestClient(app) as client:
        r = client.get("/b")
    assert r.status_code == 200
    assert len(r.content) == len(data)
    assert store.file.largest_read == distribution.CHUNK_SIZE
    assert store.file.closed


# -- SRI -------------------------------------------------------------------------------


def test_sri_known_vector() -> None:
    # The example of the SRI specification / MDN.
    assert sri(b"alert('Hello, world.');") == (
        "sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO"
    )


def test_sri_of_path_and_file_equal_bytes(tmp_path: Path) -> None:
    data = b"export const x = 1;\n" * 100_000
    path = tmp_path / "app.js"
    path.write_bytes(data)
    expected = sri(data)
    assert sri(path) == expected
    assert sri(str(path)) == expected
    with path.open("rb") as f:
        assert sri(f) == expected
    assert sri(data, "sha256") == "sha256-" + base64.b64encode(
        hashlib.sha256(data).digest()
    ).decode("ascii")
    assert sri(data, "sha512").startswith("sha512-")


def test_sri_from_digest_and_errors() -> None:
    digest = hashlib.sha384(b"x").digest()
    assert sri_from_digest(digest) == sri(b"x")
    with pytest.raises(ValueError, match="48 bytes"):
        sri_from_digest(b"short")
    with pytest.raises(ValueError, match="not 'md5'"):
        sri(b"x", "md5")
