"""No organization-scoped route lets anyone read or write another organization.

Walks every path of the OpenAPI document that names an ``{org}`` and calls each of
its methods as a stranger to that organization (a user of another one) and as a
plain member: a stranger gets what a non-existent organization gets (404, or 422 for a
malformed body), so nothing is read, written or even revealed; a member never gets a
2xx on a write that needs an admin. New routes are covered automatically, since the
list comes from the running app.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.accounts.test_orgs import PASSWORD, bearer

WRITE_METHODS = {"post", "put", "delete", "patch"}
# Writes a plain member may make in their own organization (none today).
MEMBER_WRITES: set[tuple[str, str]] = set()


def _fill(path: str, org: str) -> str:
    path = path.replace("{org}", org)
    return re.sub(r"\{[^}]+\}", "com.example.crm-connector", path)


def test_every_org_route_refuses_strangers_and_members_cannot_write(
    app_client: TestClient, admin_headers: dict[str, str]
) -> None:
    admin = admin_headers
    for name in ["alice", "mallory"]:
        r = app_client.post(
            "/api/v1/users", json={"name": name, "password": PASSWORD}, headers=admin
        )
        assert r.status_code == 201
    assert app_client.post("/api/v1/orgs", json={"slug": "acme"}, headers=admin).status_code == 201
    assert app_client.post("/api/v1/orgs", json={"slug": "evil"}, headers=admin).status_code == 201
    app_client.put("/api/v1/orgs/acme/members/alice", json={"role": "member"}, headers=admin)
    app_client.put("/api/v1/orgs/evil/members/mallory", json={"role": "org_admin"}, headers=admin)
    tokens = {}
    for name in ["alice", "mallory"]:
        login = app_client.post("/api/v1/login", json={"name": name, "password": PASSWORD})
        tokens[name] = bearer(login.json()["token"])
    app_client.cookies.clear()

    paths = {
        p: ops
        for p, ops in app_client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        if "{org}" in p
    }
    assert len(paths) >= 15, sorted(paths)  # the walk really covers the org-scoped API
    checked = 0
    for path, ops in sorted(paths.items()):
        for method in sorted(ops):
            url = _fill(path, "acme")
            body = {} if method in WRITE_METHODS else None
            stranger = app_client.request(method, url, json=body, headers=tokens["mallory"])
            # 404, or 422 when the body is checked first: the same answer as for an
            # organization that does not exist, so nothing about acme is revealed.
            assert stranger.status_code in (404, 422), (method, url, stranger.text)
            missing = app_client.request(
                method, _fill(path, "no-such-org"), json=body, headers=tokens["mallory"]
            )
            assert stranger.status_code == missing.status_code, (method, url)
            if method in WRITE_METHODS and (method, path) not in MEMBER_WRITES:
                member = app_client.request(method, url, json=body, headers=tokens["alice"])
                assert not 200 <= member.status_code < 300, (method, url, member.text)
                assert member.status_code in (403, 404, 422), (method, url, member.status_code)
            checked += 1
    assert checked >= 20
