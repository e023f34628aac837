from __future__ import annotations

from fastapi.testclient import TestClient

from apprt.settings import Settings


def test_me_returns_the_token_owner(app_client: TestClient, admin_headers: dict[str, str]) -> None:
    response = app_client.get("/api/v1/me", headers=admin_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "admin"
    assert body["role"] == "platform_admin"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
    assert set(body) == {"id", "name", "role", "created_at"}


def test_missing_token_is_a_401_problem(app_client: TestClient) -> None:
    response = app_client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401
    assert body["type"] == "urn:apprt:problem:not-authenticated"
    assert body["problems"][0]["location"] == "Authorization"
    assert "admin.token" in body["problems"][0]["hint"]


def test_invalid_token_is_a_401_problem(app_client: TestClient) -> None:
    for header in ("Bearer apprt_nope", "Basic YWRtaW46YWRtaW4=", "Bearer"):
        response = app_client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_me_is_documented_with_bearer_security(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    assert "ApiToken" in spec["components"]["securitySchemes"]
    assert spec["paths"]["/api/v1/me"]["get"]["security"] == [{"ApiToken": []}]


def test_preset_token_works_over_http(settings: Settings) -> None:
    from apprt.server import create_app

    preset = "apprt_preset-token-over-http-0005"
    with TestClient(create_app(settings.model_copy(update={"admin_token": preset}))) as client:
        response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {preset}"})
        assert response.status_code == 200
