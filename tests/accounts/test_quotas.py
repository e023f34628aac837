"""Organization quotas: set at creation or later by the platform admin, never by the org."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.accounts.test_orgs import people  # noqa: F401 (fixture)


def test_quotas_are_set_at_creation_and_changed_by_the_platform_admin(
    app_client: TestClient, admin_headers: dict[str, str]
) -> None:
    created = app_client.post(
        "/api/v1/orgs",
        json={"slug": "small", "max_apps": 3, "max_memory_mb": 512},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["max_apps"], body["max_memory_mb"]) == (3, 512)
    assert body["max_storage_mb"] == 10240  # not given: the default

    changed = app_client.patch(
        "/api/v1/orgs/small",
        json={"max_storage_mb": 100, "name": "Small Co"},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    got = app_client.get("/api/v1/orgs/small", headers=admin_headers).json()
    assert (got["name"], got["max_apps"], got["max_storage_mb"]) == ("Small Co", 3, 100)


def test_org_admins_rename_but_cannot_raise_their_own_quotas(
    app_client: TestClient,
    people: dict[str, dict[str, str]],  # noqa: F811
) -> None:
    alice, bob = people["alice"], people["bob"]  # acme's admin, acme's member
    raised = app_client.patch("/api/v1/orgs/acme", json={"max_apps": 1000}, headers=alice)
    assert raised.status_code == 403
    assert "platform admin" in raised.json()["problems"][0]["reason"]
    renamed = app_client.patch("/api/v1/orgs/acme", json={"name": "ACME Inc."}, headers=alice)
    assert renamed.status_code == 200 and renamed.json()["name"] == "ACME Inc."
    assert renamed.json()["max_apps"] == 50  # unchanged
    assert app_client.patch("/api/v1/orgs/acme", json={"name": "x"}, headers=bob).status_code == 403
    # A stranger learns nothing, as for any other organization route.
    carol = people["carol"]
    assert (
        app_client.patch("/api/v1/orgs/acme", json={"name": "x"}, headers=carol).status_code == 404
    )


def test_bad_quotas_are_refused_with_the_field_named(
    app_client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = app_client.post("/api/v1/orgs", json={"slug": "neg", "max_apps": -1}, headers=admin_headers)
    assert r.status_code == 422
    assert "max_apps" in r.text
    assert app_client.get("/api/v1/orgs/neg", headers=admin_headers).status_code == 404
    r = app_client.patch("/api/v1/orgs/nowhere", json={"max_apps": 2}, headers=admin_headers)
    assert r.status_code == 404
