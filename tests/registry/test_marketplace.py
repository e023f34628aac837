"""Search (FTS5 and the portable fallback), versions, compatibility."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from apprt.registry import search
from tests.registry.conftest import PublisherFixture, upload

API = "/api/v1/registry"


@pytest.fixture
def catalog(
    app_client: TestClient, publisher: PublisherFixture, make_package: Callable[..., Path]
) -> TestClient:
    h = publisher.headers
    for app_id, description, tags in [
        ("com.example.sales-board", "Pipeline and forecast for the sales team.", ["sales"]),
        ("com.example.notes", "Shared notes for a team.", ["notes", "collaboration"]),
        ("com.example.crm", "Contacts and deals from the CRM.", ["sales", "crm"]),
    ]:
        pkg = make_package(app_id=app_id, description=description, tags=tags)
        assert upload(app_client, h, pkg).status_code == 201
    pending = make_package(app_id="com.example.secret-sales", permissions=["dataroom:write"])
    assert upload(app_client, h, pending).json()["state"] == "pending_review"
    return app_client


def ids(client: TestClient, **params: object) -> list[str]:
    r = client.get(f"{API}/search", params=params)
    assert r.status_code == 200, r.text
    return [a["app_id"] for a in r.json()["results"]]


def test_full_text_search_with_tags(catalog: TestClient) -> None:
    app = catalog.app
    assert isinstance(app, FastAPI)
    assert search._fts_engines.get(app.state.engine) is True  # SQLite FTS5 in use
    assert ids(catalog, q="sales") == ["com.example.sales-board", "com.example.crm"]
    assert ids(catalog, q="forec") == ["com.example.sales-board"]  # prefix match
    assert ids(catalog, q="team notes") == ["com.example.notes"]
    assert ids(catalog, q="deals", tag="crm") == ["com.example.crm"]
    assert ids(catalog, tag=["sales", "crm"]) == ["com.example.crm"]
    assert ids(catalog, q="") == ["com.example.crm", "com.example.notes", "com.example.sales-board"]
    assert ids(catalog, q='"unbalanced AND (') == []  # user text is never FTS syntax
    assert ids(catalog, q="nothing-like-this") == []


def test_like_fallback_gives_the_same_answers(catalog: TestClient) -> None:
    app = catalog.app
    assert isinstance(app, FastAPI)
    with app.state.session_factory() as session:
        like = search.LikeSearch()
        found = [a.app_id for a in like.search(session, "sales", [], 10)]
        assert sorted(found) == ["com.example.crm", "com.example.sales-board"]
        assert [a.app_id for a in like.search(session, "deals", ["crm"], 10)] == ["com.example.crm"]
        assert like.search(session, "secret", [], 10) == []  # pending: not listed


def test_index_is_rebuilt_at_start(catalog: TestClient) -> None:
    app = catalog.app
    assert isinstance(app, FastAPI)
    engine = app.state.engine
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM registry_search")
    assert ids(catalog, q="sales") == []
    search.ensure(engine)
    assert len(ids(catalog, q="sales")) == 2


def test_versions_and_unknown_apps(catalog: TestClient, publisher: PublisherFixture) -> None:
    versions = catalog.get(f"{API}/apps/com.example.crm/versions").json()
    assert [v["version"] for v in versions] == ["1.0.0"]
    assert versions[0]["download"] == f"/blobs/sha256/{versions[0]['sha256']}"
    r = catalog.get(f"{API}/apps/com.example.unknown/versions")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    # A pending version is visible to its publisher only.
    assert catalog.get(f"{API}/apps/com.example.secret-sales/versions").status_code == 404
    assert catalog.get(f"{API}/apps/com.example.secret-sales").status_code == 404
    mine = catalog.get(f"{API}/apps/com.example.secret-sales/versions", headers=publisher.headers)
    assert [v["state"] for v in mine.json()] == ["pending_review"]
    r = catalog.get(f"{API}/apps/{'x' * 300}")
    assert r.status_code == 422
