"""Organizations, memberships, passwords and sessions, over the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from itertools import product

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from apprt.accounts import orgs
from apprt.accounts.models import Role
from apprt.accounts.services import authenticate, create_token
from apprt.errors import ApprtError

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(app_client: TestClient, admin_headers: dict[str, str]) -> dict[str, dict[str, str]]:
    """acme: alice (org admin), bob (member); globex: carol (org admin); dave: no org."""
    c = app_client
    for name in ["alice", "bob", "carol", "dave"]:
        r = c.post(
            "/api/v1/users", json={"name": name, "password": PASSWORD}, headers=admin_headers
        )
        assert r.status_code == 201, r.text
    assert (
        c.post(
            "/api/v1/orgs", json={"slug": "acme", "admin": "alice"}, headers=admin_headers
        ).status_code
        == 201
    )
    assert (
        c.post(
            "/api/v1/orgs", json={"slug": "globex", "admin": "carol"}, headers=admin_headers
        ).status_code
        == 201
    )
    headers = {"admin": admin_headers}
    for name in ["alice", "bob", "carol", "dave"]:
        login = c.post("/api/v1/login", json={"name": name, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers[name] = bearer(login.json()["token"])
    c.cookies.clear()  # each request below authenticates with its own bearer token
    r = c.put("/api/v1/orgs/acme/members/bob", json={"role": "member"}, headers=headers["alice"])
    assert r.status_code == 200
    return headers


def test_cross_organization_access_matrix(
    app_client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    """Every user against every organization, for reads and writes."""
    member_of = {
        "admin": {"acme", "globex"},
        "alice": {"acme"},
        "bob": {"acme"},
        "carol": {"globex"},
        "dave": set(),
    }
    admin_of = {
        "admin": {"acme", "globex"},
        "alice": {"acme"},
        "bob": set(),
        "carol": {"globex"},
        "dave": set(),
    }
    for who, org in product(people, ["acme", "globex"]):
        h = people[who]
        read = app_client.get(f"/api/v1/orgs/{org}/members", headers=h).status_code
        assert read == (200 if org in member_of[who] else 404), (who, org, read)
        write = app_client.put(
            f"/api/v1/orgs/{org}/members/dave", json={"role": "member"}, headers=h
        ).status_code
        expected = 200 if org in admin_of[who] else 403 if org in member_of[who] else 404
        assert write == expected, (who, org, write)
        if write == 200:  # undo, so the next row starts from the same memberships
            assert (
                app_client.delete(
                    f"/api/v1/orgs/{org}/members/dave", headers=people["admin"]
                ).status_code
                == 204
            )
    listed = {
        w: sorted(o["slug"] for o in app_client.get("/api/v1/orgs", headers=h).json())
        for w, h in people.items()
    }
    assert listed == {w: sorted(s) for w, s in member_of.items()}


def test_strangers_cannot_tell_missing_orgs_from_hidden_ones(
    app_client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    hidden = app_client.get("/api/v1/orgs/globex", headers=people["dave"])
    missing = app_client.get("/api/v1/orgs/nope", headers=people["dave"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["problems"][0]["reason"].replace("globex", "X") == missing.json()[
        "problems"
    ][0]["reason"].replace("nope", "X")


def test_only_platform_admin_creates_users_and_orgs(
    app_client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    assert (
        app_client.post("/api/v1/orgs", json={"slug": "x"}, headers=people["alice"]).status_code
        == 403
    )
    assert (
        app_client.post("/api/v1/users", json={"name": "eve"}, headers=people["alice"]).status_code
        == 403
    )
    assert app_client.get("/api/v1/users", headers=people["bob"]).status_code == 403


def test_bad_names_duplicates_and_last_admin(
    app_client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    admin = people["admin"]
    bad = app_client.post("/api/v1/orgs", json={"slug": "Acme Corp"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["problems"][0]["location"] == "name"
    assert app_client.post("/api/v1/orgs", json={"slug": "acme"}, headers=admin).status_code == 409
    assert (
        app_client.post("/api/v1/users", json={"name": "alice"}, headers=admin).status_code == 409
    )
    short = app_client.post(
        "/api/v1/users", json={"name": "eve", "password": "short"}, headers=admin
    )
    assert short.status_code == 400 and short.json()["problems"][0]["location"] == "password"
    last = app_client.delete("/api/v1/orgs/acme/members/alice", headers=admin)
    assert last.status_code == 409 and "last admin" in last.json()["problems"][0]["reason"]


def test_login_cookie_logout_and_wrong_password(
    app_client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    wrong = app_client.post("/api/v1/login", json={"name": "bob", "password": "nope nope nope"})
    nobody = app_client.post("/api/v1/login", json={"name": "zed", "password": "nope nope nope"})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json()["problems"] == nobody.json()["problems"]  # no user enumeration
    ok = app_client.post("/api/v1/login", json={"name": "bob", "password": PASSWORD})
    cookie = ok.headers["set-cookie"]
    assert "apprt_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert app_client.get("/api/v1/me").json()["name"] == "bob"  # the cookie alone works
    assert app_client.post("/api/v1/logout").status_code == 204
    app_client.cookies.set("apprt_session", ok.json()["token"])
    assert app_client.get("/api/v1/me").status_code == 401  # revoked


def test_api_tokens_for_yourself(app_client: TestClient, people: dict[str, dict[str, str]]) -> None:
    r = app_client.post("/api/v1/tokens", json={"name": "ci"}, headers=people["bob"])
    assert r.status_code == 201 and r.json()["expires_at"] is None
    assert app_client.get("/api/v1/me", headers=bearer(r.json()["token"])).json()["name"] == "bob"


def test_session_tokens_expire(db_session: Session) -> None:
    user = orgs.create_user(db_session, "erin", password=PASSWORD)
    token = create_token(db_session, user, "session", expires_in=timedelta(seconds=-1))
    assert authenticate(db_session, token) is None
    fresh = create_token(db_session, user, "session", expires_in=timedelta(hours=1))
    assert authenticate(db_session, fresh) is user


def test_passwords_are_argon2_and_checked(db_session: Session) -> None:
    user = orgs.create_user(db_session, "frank", password=PASSWORD, role=Role.MEMBER)
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert orgs.check_password(db_session, "frank", PASSWORD) is user
    with pytest.raises(ApprtError, match="wrong user name or password"):
        orgs.check_password(db_session, "frank", PASSWORD + "x")
    token_only = orgs.create_user(db_session, "gina")
    with pytest.raises(ApprtError):
        orgs.check_password(db_session, token_only.name, "")


def test_empty_password_is_refused_not_ignored(
    app_client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = app_client.post(
        "/api/v1/users", json={"name": "hal", "password": ""}, headers=admin_headers
    )
    assert r.status_code == 400 and r.json()["problems"][0]["location"] == "password"
