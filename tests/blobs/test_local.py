from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest

from apprt.blobs import (
    BlobError,
    BlobNotFoundError,
    BlobRef,
    BlobStore,
    BlobTooLargeError,
    LocalBlobStore,
)
from apprt.blobs import local as local_module


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(store: LocalBlobStore) -> list[Path]:
    return list((store.root / ".tmp").iterdir())


def test_is_a_blob_store(store: LocalBlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_put_and_read_back(store: LocalBlobStore) -> None:
    ref = store.put_bytes(b"hello")
    assert ref == BlobRef(digest=sha(b"hello"), size=5)
    path = store.root / "sha256" / ref.digest[:2] / ref.digest
    assert path.is_file()
    assert path.stat().st_mode & 0o777 == 0o444
    assert store.exists(ref.digest)
    assert store.size(ref.digest) == 5
    with store.open(ref.digest) as f:
        assert f.read() == b"hello"
    assert list(store.iter_digests()) == [ref.digest]
    assert temp_files(store) == []


def test_put_streams_in_chunks(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "CHUNK_SIZE", 7)
    data = os.urandom(1000)
    ref = store.put(io.BytesIO(data))
    assert ref == BlobRef(sha(data), 1000)
    with store.open(ref.digest) as f:
        assert f.read() == data


def test_empty_blob(store: LocalBlobStore) -> None:
    ref = store.put_bytes(b"")
    assert ref == BlobRef(sha(b""), 0)
    assert store.exists(ref.digest)


def test_storing_the_same_content_twice_is_idempotent(store: LocalBlobStore) -> None:
    a = store.put_bytes(b"same")
    b = store.put_bytes(b"same")
    assert a == b
    assert list(store.iter_digests()) == [a.digest]
    assert temp_files(store) == []


class CountingReader:
    """An endless stream that records how much was read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "put must never ask for the whole stream"
        self.read_bytes += size
        return b"x" * size


def test_max_size_stops_reading_and_leaves_nothing(store: LocalBlobStore) -> None:
    reader = CountingReader()
    with pytest.raises(BlobTooLargeError) as info:
        store.put(reader, max_size=10_000)
    assert info.value.status_code == 413
    assert reader.read_bytes == 10_001
    assert list(store.iter_digests()) == []
    assert temp_files(store) == []


def test_max_size_is_inclusive(store: LocalBlobStore) -> None:
    assert store.put_bytes(b"12345", max_size=5).size == 5
    with pytest.raises(BlobTooLargeError):
        store.put_bytes(b"123456", max_size=5)
    assert store.put_bytes(b"", max_size=0).size == 0


class FailingReader:
    def __init__(self, good: bytes) -> None:
        self.good = io.BytesIO(good)

    def read(self, size: int = -1) -> bytes:
        chunk = self.good.read(size)
        if not chunk:
            raise ConnectionResetError("client went away")
        return chunk


def test_reader_failing_midstream_leaves_no_blob_and_no_temp_file(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "CHUNK_SIZE", 16)
    with pytest.raises(ConnectionResetError):
        store.put(FailingReader(b"y" * 100))
    assert list(store.iter_digests()) == []
    assert not store.exists(sha(b"y" * 100))
    assert temp_files(store) == []


def test_concurrent_puts_of_the_same_content_make_one_blob(store: LocalBlobStore) -> None:
    data = os.urandom(256 * 1024)
    barrier = threading.Barrier(8)
    refs: list[BlobRef] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            refs.append(store.put(io.BytesIO(data)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {r.digest for r in refs} == {sha(data)}
    assert len(refs) == 8
    assert list(store.iter_digests()) == [sha(data)]
    assert temp_files(store) == []
    with store.open(sha(data)) as f:
        assert f.read() == data


def test_falls_back_to_replace_without_hard_links(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    ref = store.put_bytes(b"no links here")
    assert store.put_bytes(b"no links here") == ref
    assert list(store.iter_digests()) == [ref.digest]
    assert temp_files(store) == []


@pytest.mark.parametrize(
    "digest",
    [
        "../../etc/passwd",
        "A" * 64,
        "0" * 63,
        "0" * 65,
        "0" * 62 + "/x",
        "",
        "g" * 64,
        "0" * 64 + "\n",
    ],
)
def test_bad_digests_are_refused_everywhere(store: LocalBlobStore, digest: str) -> None:
    for call in (store.open, store.exists, store.size, store.delete):
        with pytest.raises(BlobError) as info:
            call(digest)
        assert info.value.problems[0].location == "digest"


def test_missing_blob(store: LocalBlobStore) -> None:
    missing = sha(b"never stored")
    assert not store.exists(missing)
    assert store.delete(missing) is False
    with pytest.raises(BlobNotFoundError):
        store.open(missing)
    with pytest.raises(BlobNotFoundError):
        store.size(missing)


def test_delete(store: LocalBlobStore) -> None:
    ref = store.put_bytes(b"bye")
    assert store.delete(ref.digest) is True
    assert not store.exists(ref.digest)
    assert list(store.iter_digests()) == []


def test_iter_digests_is_sorted_and_skips_junk(store: LocalBlobStore) -> None:
    refs = [store.put_bytes(str(i).encode()) for i in range(20)]
    (store.root / "sha256" / "zz").mkdir()
    (store.root / "sha256" / refs[0].digest[:2] / "notes.txt").write_text("junk")
    assert list(store.iter_digests()) == sorted(r.digest for r in refs)


def test_stale_temp_files_are_removed_fresh_ones_kept(store: LocalBlobStore) -> None:
    tmp = store.root / ".tmp"
    stale, fresh = tmp / "put-stale", tmp / "put-fresh"
    stale.write_bytes(b"old")
    fresh.write_bytes(b"new")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    assert store.remove_stale_temp_files() == 1
    assert not stale.exists()
    assert fresh.exists()
