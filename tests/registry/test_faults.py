"""Bad input and faults: concurrent uploads, fuzzed bodies, interrupted jobs."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from apprt.db.base import utcnow
from apprt.db.engine import session_scope
from apprt.registry.checks import Check, CheckContext, CheckOutcome
from apprt.registry.models import Upload, VersionState
from apprt.registry.services import uploads
from apprt.registry.services.uploads import RegistryEnv, close_interrupted
from tests.registry.conftest import PublisherFixture, upload


def _hold_before_finalizing(monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Make each upload wait, after its checks, until all of them got there: both have
    passed the immutability check before either creates its version row."""
    gate = threading.Barrier(parties, timeout=120)
    last = uploads.PIPELINE[-1]

    def run(ctx: CheckContext) -> CheckOutcome:
        gate.wait()
        return last.run(ctx)

    monkeypatch.setattr(
        uploads, "PIPELINE", (*uploads.PIPELINE[:-1], Check(last.name, run, last.needs))
    )


def test_two_concurrent_uploads_of_the_same_version_exactly_one_wins(
    app_client: TestClient,
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packages = [make_package(description=f"Variant {i}.") for i in range(2)]
    _hold_before_finalizing(monkeypatch, 2)
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def send(i: int) -> None:
        barrier.wait()
        results[i] = upload(app_client, publisher.headers, packages[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 409], [r.text for r in results]
    versions = app_client.get("/api/v1/registry/apps/com.example.hello/versions").json()
    assert len(versions) == 1
    winner = next(r for r in results if r.status_code == 201).json()
    assert versions[0]["sha256"] == winner["sha256"]
    app = app_client.app
    assert isinstance(app, FastAPI)
    assert set(app.state.blob_store.iter_digests()) == {winner["sha256"]}


def test_two_concurrent_identical_uploads_are_both_fine(
    app_client: TestClient,
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = make_package()
    _hold_before_finalizing(monkeypatch, 2)
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def send(i: int) -> None:
        barrier.wait()
        results[i] = upload(app_client, publisher.headers, package)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert sorted(r.status_code for r in results) == [200, 201]
    assert len(app_client.get("/api/v1/registry/apps/com.example.hello/versions").json()) == 1


def test_fuzzed_upload_bodies_never_500(
    app_client: TestClient, publisher: PublisherFixture, make_package: Callable[..., Path]
) -> None:
    good = make_package().read_bytes()
    rng = random.Random(1234)
    bodies = [b"", b"\x1f\x8b", good[: len(good) // 2], good + b"\0", good + b"trailing"]
    for _ in range(25):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        bodies.append(bytes(data))
    bodies += [rng.randbytes(rng.randint(1, 3000)) for _ in range(10)]
    for body in bodies:
        r = upload(app_client, publisher.headers, body)
        assert r.status_code < 500, r.text
        assert r.status_code in (200, 201, 409, 422), r.text
        assert r.headers["content-type"] in ("application/json", "application/problem+json")
    # Multipart framing fuzz.
    for body in [
        b"--b\r\n",
        b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nxx",
        b"\0" * 50,
    ]:
        r = app_client.post(
            "/api/v1/registry/uploads",
            content=body,
            headers={**publisher.headers, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert 400 <= r.status_code < 500, r.text


def test_interrupted_jobs_are_closed_and_their_blobs_released(
    app_client: TestClient, publisher: PublisherFixture
) -> None:
    app = app_client.app
    assert isinstance(app, FastAPI)
    ref = app.state.blob_store.put_bytes(b"half-validated package")
    with session_scope(app.state.session_factory) as session:
        session.add(
            Upload(
                publisher_id=1,
                state=VersionState.VALIDATING,
                sha256=ref.digest,
                size=ref.size,
                created_at=utcnow() - timedelta(hours=1),
            )
        )
    env = RegistryEnv(
        sessions=app.state.session_factory,
        blob_store=app.state.blob_store,
        config=app.state.registry_config,
        listeners=[],
    )
    assert close_interrupted(env) == 1
    assert not app.state.blob_store.exists(ref.digest)
    job = app_client.get("/api/v1/registry/uploads/1", headers=publisher.headers).json()
    assert job["state"] == "rejected" and "interrupted" in job["history"][-1]["reason"]
    assert close_interrupted(env) == 0
