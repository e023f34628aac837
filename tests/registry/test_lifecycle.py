"""Review, deprecate, yank, unpublish; the history; the publication listeners."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from apprt.registry.hooks import PublicationListener
from apprt.registry.services.queries import RegistryIndex, notices
from apprt.resolve import ResolutionError, resolve
from tests.registry.conftest import PublisherFixture, upload

APPS = "/api/v1/registry/apps"


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def published(
        self, session: Session, *, app_id: str, version: str, sha256: str, length: int
    ) -> None:
        assert session.in_transaction()
        self.events.append(
            (
                "published",
                {"app_id": app_id, "version": version, "sha256": sha256, "length": length},
            )
        )
        if self.fail:
            raise RuntimeError("listener refuses")

    def unpublished(self, session: Session, *, app_id: str, version: str) -> None:
        self.events.append(("unpublished", {"app_id": app_id, "version": version}))


@pytest.fixture
def recorder(app_client: TestClient) -> Recorder:
    app = app_client.app
    assert isinstance(app, FastAPI)
    recorder = Recorder()
    listener: PublicationListener = recorder
    app.state.registry_listeners.append(listener)
    return recorder


def _action(
    client: TestClient, headers: dict[str, str], app_id: str, version: str, action: str, **body: Any
) -> Any:
    return client.post(f"{APPS}/{app_id}/versions/{version}/{action}", json=body, headers=headers)


def test_review_queue_approve_and_reject(
    app_client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
    recorder: Recorder,
) -> None:
    r = upload(app_client, publisher.headers, make_package(permissions=["dataroom:write"]))
    assert r.json()["state"] == "pending_review"
    assert recorder.events == []  # nothing published yet
    assert app_client.get(f"{APPS}/com.example.hello/versions/1.0.0").status_code == 404
    owner_view = app_client.get(
        f"{APPS}/com.example.hello/versions/1.0.0", headers=publisher.headers
    )
    assert owner_view.json()["state"] == "pending_review"
    queue = app_client.get("/api/v1/registry/reviews", headers=admin_headers).json()
    assert [(q["app_id"], q["version"]) for q in queue] == [("com.example.hello", "1.0.0")]
    assert queue[0]["permissions"]["sensitive"] == ["dataroom:write"]
    assert any(reason.startswith("permissions:") for reason in queue[0]["reasons"])
    assert app_client.get("/api/v1/registry/reviews", headers=publisher.headers).status_code == 403
    # The publisher cannot approve its own version.
    r = _action(app_client, publisher.headers, "com.example.hello", "1.0.0", "approve")
    assert r.status_code == 403
    r = _action(app_client, admin_headers, "com.example.hello", "1.0.0", "approve", reason="ok")
    assert r.status_code == 200 and r.json()["state"] == "published"
    assert recorder.events[0][0] == "published"
    assert recorder.events[0][1]["app_id"] == "com.example.hello"
    assert recorder.events[0][1]["length"] == r.json()["size"]
    r = _action(app_client, admin_headers, "com.example.hello", "1.0.0", "approve")
    assert r.status_code == 409  # already published

    r = upload(
        app_client,
        publisher.headers,
        make_package(version="1.1.0", permissions=["dataroom:write", "state"]),
    )
    sha = r.json()["sha256"]
    r = _action(app_client, admin_headers, "com.example.hello", "1.1.0", "reject")
    assert r.status_code == 400 and r.json()["problems"][0]["location"] == "reason"
    r = _action(
        app_client, admin_headers, "com.example.hello", "1.1.0", "reject", reason="why state?"
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    app = app_client.app
    assert isinstance(app, FastAPI)
    assert not app.state.blob_store.exists(sha)  # a rejected package leaves no blob
    history = app_client.get(
        f"{APPS}/com.example.hello/versions/1.1.0/history", headers=admin_headers
    ).json()
    assert [(h["from_state"], h["to_state"]) for h in history] == [
        (None, "uploaded"),
        ("uploaded", "validating"),
        ("validating", "pending_review"),
        ("pending_review", "rejected"),
    ]
    assert history[-1]["actor"] == "user:admin" and history[-1]["reason"] == "why state?"
    # A rejected version can be uploaded again (fixed).
    r = upload(
        app_client, publisher.headers, make_package(version="1.1.0", permissions=["dataroom:write"])
    )
    assert r.status_code == 201 and r.json()["state"] == "pending_review"


def test_deprecate_yank_and_what_installers_see(
    app_client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
) -> None:
    h = publisher.headers
    for v in ("1.0.0", "1.1.0"):
        assert upload(app_client, h, make_package(version=v)).status_code == 201
    r = _action(app_client, h, "com.example.hello", "1.0.0", "deprecate", message="")
    assert r.status_code == 400
    r = _action(
        app_client, h, "com.example.hello", "1.0.0", "deprecate",
        message="slow", replacement="com.example.hello@1.1.0",
    )  # fmt: skip
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "deprecated"
    assert body["deprecation"] == {"message": "slow", "replacement": "com.example.hello@1.1.0"}
    assert body["warnings"] == ["deprecated: slow (use com.example.hello@1.1.0 instead)"]
    r = _action(app_client, h, "com.example.hello", "1.1.0", "yank", reason="data loss bug")
    assert r.status_code == 200 and r.json()["state"] == "yanked"
    assert "pinned exactly" in r.json()["warnings"][0]
    r = _action(app_client, h, "com.example.hello", "1.1.0", "deprecate", message="x")
    assert r.status_code == 409

    # The resolver over the registry: yanked only when pinned exactly.
    app = app_client.app
    assert isinstance(app, FastAPI)
    with app.state.session_factory() as session:
        index = RegistryIndex(session)
        assert (
            resolve({"com.example.hello": "^1.0"}, index).resolved["com.example.hello"].version
            == "1.0.0"
        )
        assert (
            resolve({"com.example.hello": "=1.1.0"}, index).resolved["com.example.hello"].version
            == "1.1.0"
        )
        told = notices(session, {"com.example.hello": "1.1.0", "com.example.nope": "1.0.0"})
        assert [(n.version, n.state.value, n.message) for n in told] == [
            ("1.1.0", "yanked", "data loss bug")
        ]
    listing = app_client.get(f"{APPS}/com.example.hello").json()
    assert listing["latest_version"] == "1.0.0"
    compatible = app_client.get(f"{APPS}/com.example.hello/compatible").json()
    assert compatible["version"] == "1.0.0" and compatible["state"] == "deprecated"


def test_unpublish_window_dependents_and_listeners(
    app_client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
    recorder: Recorder,
    registry_config: Any,
) -> None:
    h = publisher.headers
    base = upload(app_client, h, make_package(app_id="com.example.base")).json()
    upload(app_client, h, make_package(dependencies={"com.example.base": "^1.0"}))
    r = _action(app_client, h, "com.example.base", "1.0.0", "unpublish")
    assert r.status_code == 409 and "com.example.hello@1.0.0" in r.text
    r = _action(app_client, h, "com.example.hello", "1.0.0", "unpublish", reason="oops")
    assert r.status_code == 200 and r.json()["state"] == "unpublished"
    assert ("unpublished", {"app_id": "com.example.hello", "version": "1.0.0"}) in recorder.events
    assert app_client.get(f"{APPS}/com.example.hello/versions").status_code == 404
    mine = app_client.get(f"{APPS}/com.example.hello", headers=h).json()
    assert mine["latest_version"] is None
    assert [v["state"] for v in mine["versions"]] == ["unpublished"]
    # A version number is never reused.
    r = upload(app_client, h, make_package(dependencies={"com.example.base": "^1.0"}))
    assert r.status_code == 409 and "never reused" in r.text
    # Outside the window: refused, yank suggested.
    registry_config.unpublish_window_h = 0
    r = _action(app_client, h, "com.example.base", "1.0.0", "unpublish")
    assert r.status_code == 409 and "yank" in r.json()["problems"][0]["hint"]
    app = app_client.app
    assert isinstance(app, FastAPI)
    assert app.state.blob_store.exists(base["sha256"])


def test_a_failing_listener_undoes_the_publication(
    app_client: TestClient,
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
    recorder: Recorder,
) -> None:
    recorder.fail = True
    with pytest.raises(RuntimeError):
        upload(app_client, publisher.headers, make_package())
    recorder.fail = False
    assert app_client.get(f"{APPS}/com.example.hello/versions").status_code == 404
    jobs = app_client.get("/api/v1/registry/uploads", headers=publisher.headers).json()
    assert jobs[0]["state"] == "rejected"
    # ...and nothing half-done blocks the next attempt.
    r = upload(app_client, publisher.headers, make_package())
    assert r.status_code == 201, r.text


def test_only_the_owner_or_admin_manage_versions(
    app_client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
    tmp_path: Path,
) -> None:
    from tests.registry.conftest import make_publisher

    upload(app_client, publisher.headers, make_package())
    acme = make_publisher(app_client, admin_headers, tmp_path, "acme", ("com.*",))
    r = _action(app_client, acme.headers, "com.example.hello", "1.0.0", "yank", reason="x")
    assert r.status_code == 403
    r = _action(app_client, admin_headers, "com.example.hello", "1.0.0", "yank", reason="abuse")
    assert r.status_code == 200
    r = _action(app_client, admin_headers, "com.example.nope", "1.0.0", "yank", reason="x")
    assert r.status_code == 404
    r = _action(app_client, admin_headers, "com.example.hello", "9.9.9", "yank", reason="x")
    assert r.status_code == 404


def test_dependency_graph_and_resolution_errors(
    app_client: TestClient,
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
) -> None:
    h = publisher.headers
    upload(app_client, h, make_package(app_id="com.example.base", version="1.4.0"))
    upload(
        app_client,
        h,
        make_package(app_id="com.example.mid", dependencies={"com.example.base": "^1.2"}),
    )
    upload(app_client, h, make_package(dependencies={"com.example.mid": "^1.0"}))
    graph = app_client.get(f"{APPS}/com.example.hello/versions/1.0.0/dependencies").json()
    assert graph["install_order"] == [
        "com.example.base@1.4.0", "com.example.mid@1.0.0", "com.example.hello@1.0.0",
    ]  # fmt: skip
    assert {
        "from": "com.example.mid@1.0.0",
        "to": "com.example.base@1.4.0",
        "range": "^1.2",
    } in graph["edges"]
    r = app_client.get(f"{APPS}/com.example.hello/versions/1.0.0/dependencies?platform=nope")
    assert r.status_code == 400
    r = app_client.get(f"{APPS}/com.example.hello/compatible?platform=2.0.0")
    assert r.status_code == 404 and "2.0.0" in r.text
    app = app_client.app
    assert isinstance(app, FastAPI)
    with app.state.session_factory() as session, pytest.raises(ResolutionError) as caught:
        resolve({"com.example.hello": "^1", "com.example.base": "^2"}, RegistryIndex(session))
    assert "com.example.base" in str(caught.value)
