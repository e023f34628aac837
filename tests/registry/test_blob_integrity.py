"""``GET /blobs/sha256/<digest>`` never answers 200 with bytes that are not ``digest``:
a blob damaged on disk is a 500 problem+json naming it (and logged); a blob too large
to hash before sending is cut before its last chunk."""

from __future__ import annotations

import hashlib
import io

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from apprt.blobs.local import LocalBlobStore
from apprt.registry import distribution
from apprt.registry.distribution import StoredBlobCorruptError

DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def store(app_client: TestClient) -> LocalBlobStore:
    found: LocalBlobStore = app_client.app.state.blob_store  # type: ignore[attr-defined]
    return found


def _flip_a_byte(store: LocalBlobStore, digest: str, at: int) -> None:
    path = store.path_of(digest)
    path.chmod(0o644)
    damaged = bytearray(path.read_bytes())
    damaged[at] ^= 0x01
    path.write_bytes(bytes(damaged))


def _damaged(data: bytes, at: int) -> bytes:
    damaged = bytearray(data)
    damaged[at] ^= 0x01
    return bytes(damaged)


def test_a_corrupt_blob_is_a_500_problem_not_its_bytes(
    app_client: TestClient, store: LocalBlobStore
) -> None:
    digest = store.put_bytes(DATA).digest
    assert app_client.get(f"/blobs/sha256/{digest}").content == DATA  # intact: served
    _flip_a_byte(store, digest, len(DATA) // 2)

    with capture_logs() as logs:
        r = app_client.get(f"/blobs/sha256/{digest}")
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "etag" not in r.headers
    problem = r.json()
    assert problem["type"] == "urn:apprt:problem:stored-blob-corrupt"
    assert problem["title"] == "stored blob is corrupt"
    assert digest in problem["problems"][0]["reason"]
    assert [e["digest"] for e in logs if e["event"] == "blob.corrupt"] == [digest]


def test_a_blob_too_large_to_check_first_is_cut_before_its_last_chunk(
    app_client: TestClient, store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distribution, "VERIFY_BEFORE_SENDING", 1024)
    monkeypatch.setattr(distribution, "CHUNK_SIZE", 4096)
    data = DATA[: 3 * 4096]  # three chunks
    digest = store.put_bytes(data).digest
    assert app_client.get(f"/blobs/sha256/{digest}").content == data  # intact: whole
    _flip_a_byte(store, digest, 10)

    sent = []
    with pytest.raises(StoredBlobCorruptError):
        for chunk in distribution._stream_checked(store.open(digest), len(data), digest):
            sent.append(chunk)
    assert b"".join(sent) == _damaged(data, 10)[: 2 * 4096]  # all but the last chunk
    # Through the route: the error comes after the headers, so the response is aborted
    # (a real client sees the connection close short of Content-Length).
    with pytest.raises(RuntimeError, match="response already started") as raised:
        app_client.get(f"/blobs/sha256/{digest}")
    assert isinstance(raised.value.__cause__, StoredBlobCorruptError)


def test_range_and_head_requests_are_not_hashed(
    app_client: TestClient, store: LocalBlobStore
) -> None:
    """A part of a blob cannot be checked against the whole's digest; TUF clients and
    resumed downloads check what they assembled."""
    digest = store.put_bytes(DATA).digest
    _flip_a_byte(store, digest, 0)
    assert app_client.head(f"/blobs/sha256/{digest}").status_code == 200
    r = app_client.get(f"/blobs/sha256/{digest}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == DATA[100:200]


def test_check_whole_accepts_intact_bytes() -> None:
    data = b"intact" * 1000
    file = io.BytesIO(data)
    distribution._check_whole(file, hashlib.sha256(data).hexdigest())
    assert file.read() == data  # left at the start for streaming
