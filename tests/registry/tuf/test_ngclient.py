"""A stock ``tuf.ngclient.Updater`` against a real ``apprt serve`` over loopback HTTP:
it verifies a published package, and refuses a tampered blob, a rolled-back timestamp
and an expired timestamp."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tuf.api.exceptions import (
    BadVersionNumberError,
    DownloadLengthMismatchError,
    ExpiredMetadataError,
    LengthOrHashMismatchError,
)
from tuf.api.metadata import Metadata, Timestamp
from tuf.api.serialization.json import JSONSerializer

from apprt.registry.tuf.keys import load_key_file

from .conftest import MakeUpdater, Mirror, Registry


def test_ngclient_downloads_and_verifies_a_published_package(
    registry: Registry, make_updater: MakeUpdater, tmp_path: Path
) -> None:
    content = b"a package's bytes " * 1000
    digest, length = registry.publish("com.example.hello", "1.0.0", content)

    updater = make_updater()
    updater.refresh()
    info = updater.get_targetinfo("com.example.hello/1.0.0.apppkg")
    assert info is not None
    assert info.length == length
    assert info.hashes == {"sha256": digest}
    assert info.custom == {"app_id": "com.example.hello", "version": "1.0.0"}
    path = updater.download_target(info, str(tmp_path / "hello.apppkg"))
    assert Path(path).read_bytes() == content
    # A second client state finds it already downloaded and valid.
    assert updater.find_cached_target(info, path) == path
    # Unknown targets are simply not there.
    assert updater.get_targetinfo("com.example.hello/9.9.9.apppkg") is None


def test_ngclient_sees_a_new_version_after_refresh(
    registry: Registry, make_updater: MakeUpdater
) -> None:
    updater = make_updater()
    updater.refresh()
    assert updater.get_targetinfo("com.example.later/1.0.0.apppkg") is None
    registry.publish("com.example.later", "1.0.0", b"later")
    updater = make_updater()  # same client state, new session: refreshes again
    updater.refresh()
    assert updater.get_targetinfo("com.example.later/1.0.0.apppkg") is not None


def test_tampered_blob_is_refused(
    registry: Registry, make_updater: MakeUpdater, tmp_path: Path
) -> None:
    content = b"original bytes of the package" * 100
    digest, _ = registry.publish("com.example.tamper", "1.0.0", content)
    updater = make_updater()
    updater.refresh()
    info = updater.get_targetinfo("com.example.tamper/1.0.0.apppkg")
    assert info is not None

    blob = registry.blobs.path_of(digest)
    os.chmod(blob, 0o644)
    tampered = bytearray(content)
    tampered[10] ^= 0xFF  # same length, one byte different
    blob.write_bytes(bytes(tampered))

    destination = tmp_path / "tampered.apppkg"
    with pytest.raises(LengthOrHashMismatchError):
        updater.download_target(info, str(destination))
    assert not destination.exists()  # nothing unverified is written

    blob.write_bytes(content + b"appended")  # longer: cut off at the signed length
    with pytest.raises(DownloadLengthMismatchError):
        updater.download_target(info, str(destination))
    assert not destination.exists()


def test_rolled_back_timestamp_is_refused(
    registry: Registry, make_updater: MakeUpdater, mirror: Mirror
) -> None:
    old_timestamp = httpx.get(f"{registry.base}/tuf/timestamp.json", timeout=30).content
    registry.publish("com.example.rollback", "1.0.0", b"v1")
    updater = make_updater(mirror.base, name="victim")
    updater.refresh()  # the client has now seen the newer timestamp
    assert updater.get_targetinfo("com.example.rollback/1.0.0.apppkg") is not None

    mirror.overrides["/tuf/timestamp.json"] = old_timestamp  # an attacker's mirror
    with pytest.raises(BadVersionNumberError):
        make_updater(mirror.base, name="victim").refresh()


def test_expired_timestamp_is_refused(
    registry: Registry, make_updater: MakeUpdater, mirror: Mirror
) -> None:
    updater = make_updater(mirror.base, name="frozen")
    updater.refresh()

    # A timestamp newer than any the client saw, validly signed by the timestamp key,
    # but expired: a mirror replaying stale metadata (freeze attack) looks like this.
    current = Metadata[Timestamp].from_bytes(
        httpx.get(f"{registry.base}/tuf/timestamp.json", timeout=30).content
    )
    current.signed.version += 100
    current.signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    current.signatures.clear()
    current.sign(load_key_file(registry.repo.key_path("timestamp")))
    mirror.overrides["/tuf/timestamp.json"] = current.to_bytes(JSONSerializer())

    with pytest.raises(ExpiredMetadataError):
        make_updater(mirror.base, name="frozen").refresh()


def test_target_urls_are_content_addressed(registry: Registry) -> None:
    digest, _ = registry.publish("com.example.urls", "2.0.0", b"urls")
    ok = httpx.get(
        f"{registry.base}/tuf/targets/com.example.urls/{digest}.2.0.0.apppkg", timeout=30
    )
    assert ok.status_code == 200
    assert ok.content == b"urls"
    assert ok.headers["etag"] == f'"{digest}"'
    other = hashlib.sha256(b"other").hexdigest()
    wrong = httpx.get(
        f"{registry.base}/tuf/targets/com.example.urls/{other}.2.0.0.apppkg", timeout=30
    )
    assert wrong.status_code == 404
    assert wrong.headers["content-type"] == "application/problem+json"
    unsigned = httpx.get(f"{registry.base}/tuf/targets/com.example.urls/2.0.0.apppkg", timeout=30)
    assert unsigned.status_code == 404


def test_metadata_routes(registry: Registry) -> None:
    root = httpx.get(f"{registry.base}/tuf/1.root.json", timeout=30)
    assert root.status_code == 200
    assert root.headers["content-type"] == "application/json"
    assert "immutable" in root.headers["cache-control"]
    assert Metadata.from_bytes(root.content).signed.type == "root"
    timestamp = httpx.get(f"{registry.base}/tuf/timestamp.json", timeout=30)
    assert timestamp.headers["cache-control"] == "no-cache"
    for bad in ("2.root.json", "0.root.json", "x.json", "1.root.json.bak", "1.ROOT.json"):
        response = httpx.get(f"{registry.base}/tuf/{bad}", timeout=30)
        assert response.status_code == 404, bad
        assert response.headers["content-type"] == "application/problem+json"
