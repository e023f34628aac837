"""Publishers, their keys and tokens; who may do what; malformed credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from apprt.package import generate_keypair
from tests.registry.conftest import PublisherFixture

API = "/api/v1/registry"
PROBLEM = "application/problem+json"


def test_only_the_platform_admin_creates_publishers(
    app_client: TestClient, admin_headers: dict[str, str], publisher: PublisherFixture
) -> None:
    r = app_client.post(f"{API}/publishers", json={"name": "other"}, headers=publisher.headers)
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "urn:apprt:problem:forbidden"
    r = app_client.post(f"{API}/publishers", json={"name": "example"}, headers=admin_headers)
    assert r.status_code == 409
    r = app_client.post(f"{API}/publishers", json={"name": "Bad Name"}, headers=admin_headers)
    assert r.status_code == 400
    assert r.json()["problems"][0]["location"] == "name"
    listed = app_client.get(f"{API}/publishers", headers=admin_headers).json()
    assert [p["name"] for p in listed] == ["example"]


def test_keys_several_per_publisher_and_revocable(
    app_client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    tmp_path: Path,
) -> None:
    second = generate_keypair(tmp_path / "second")
    # The publisher manages its own keys with its token.
    r = app_client.post(
        f"{API}/publishers/example/keys",
        json={"public_key": second.public.read_text()},
        headers=publisher.headers,
    )
    assert r.status_code == 201, r.text
    kid = r.json()["key_id"]
    again = app_client.post(
        f"{API}/publishers/example/keys",
        json={"public_key": second.public.read_text()},
        headers=publisher.headers,
    )
    assert again.status_code == 409
    keys = app_client.get(f"{API}/publishers/example/keys", headers=publisher.headers).json()
    assert len(keys) == 2 and all(k["active"] for k in keys)
    r = app_client.post(
        f"{API}/publishers/example/keys/{kid}/revoke",
        json={"reason": "laptop lost"},
        headers=publisher.headers,
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert r.json()["revoked_reason"] == "laptop lost"


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        ("not a key", "not a PEM public key"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            "Ed25519",
        ),
    ],
)
def test_bad_keys_are_refused(
    app_client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    pem: str,
    reason: str,
) -> None:
    r = app_client.post(
        f"{API}/publishers/example/keys", json={"public_key": pem}, headers=admin_headers
    )
    assert r.status_code == 400
    assert reason in r.json()["problems"][0]["reason"]


def test_tokens_are_scoped_minted_by_the_admin_and_revocable(
    app_client: TestClient, admin_headers: dict[str, str], publisher: PublisherFixture
) -> None:
    r = app_client.post(
        f"{API}/publishers/example/tokens",
        json={"scopes": ["com.example.*"]},
        headers=publisher.headers,
    )
    assert r.status_code == 403  # a publisher cannot mint tokens for itself
    r = app_client.post(
        f"{API}/publishers/example/tokens", json={"scopes": ["Not A Glob!"]}, headers=admin_headers
    )
    assert r.status_code == 400 and r.json()["problems"][0]["location"] == "scopes"
    r = app_client.post(
        f"{API}/publishers/example/tokens", json={"scopes": []}, headers=admin_headers
    )
    assert r.status_code == 400
    tokens = app_client.get(f"{API}/publishers/example/tokens", headers=publisher.headers).json()
    assert len(tokens) == 1 and "token" not in tokens[0]
    assert tokens[0]["scopes"] == ["com.example.*"]
    r = app_client.post(
        f"{API}/publishers/example/tokens/{tokens[0]['id']}/revoke", headers=publisher.headers
    )
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = app_client.get(f"{API}/uploads", headers=publisher.headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_another_publisher_cannot_touch_keys_or_uploads(
    app_client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    tmp_path: Path,
) -> None:
    from tests.registry.conftest import make_publisher

    other = make_publisher(app_client, admin_headers, tmp_path, "acme", ("com.acme.*",))
    r = app_client.get(f"{API}/publishers/example/keys", headers=other.headers)
    assert r.status_code == 403
    r = app_client.post(
        f"{API}/publishers/example/keys/{publisher.key_id}/revoke", headers=other.headers
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer " + "x" * 5000,
        "Bearer apprt_" + "A" * 43,
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer \u00e9\u00e8",
    ],
)
def test_malformed_tokens_are_401_problems(app_client: TestClient, authorization: str) -> None:
    headers = {"Authorization": authorization.encode("utf-8")}
    for method, path in [("GET", f"{API}/uploads"), ("POST", f"{API}/uploads")]:
        r = app_client.request(method, path, headers=headers, content=b"x")
        assert r.status_code == 401, (authorization, r.text)
        assert r.headers["content-type"] == PROBLEM


def test_unknown_publisher_is_404(app_client: TestClient, admin_headers: dict[str, str]) -> None:
    r = app_client.post(
        f"{API}/publishers/nobody/tokens", json={"scopes": ["a.*"]}, headers=admin_headers
    )
    assert r.status_code == 404
    assert r.json()["type"] == "urn:apprt:problem:not-found"
