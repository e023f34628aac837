from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from apprt import __version__
from apprt.blobs import LocalBlobStore
from apprt.errors import ApprtError
from apprt.logging import configure_logging
from apprt.server import create_app
from apprt.settings import Settings
from tests._serve import running_server
from tests.conftest import CliResult

PROBLEM_JSON = "application/problem+json"


# -- in-process ---------------------------------------------------------------------


def test_healthz(app_client: TestClient) -> None:
    response = app_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "database": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(
    app_client: TestClient, tmp_path: Path
) -> None:
    app = app_client.app
    assert isinstance(app, FastAPI)
    broken = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    healthy, app.state.engine = app.state.engine, broken
    try:
        response = app_client.get("/healthz")
    finally:
        app.state.engine = healthy
        broken.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == "urn:apprt:problem:database-unavailable"
    assert "missing-dir" not in response.text  # no internals


def test_openapi(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    assert spec["info"]["version"] == __version__
    assert {"/healthz", "/api/v1/me"} <= set(spec["paths"])


def test_lifespan_prepares_state(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        app = client.app
        assert isinstance(app, FastAPI)
        assert isinstance(app.state.blob_store, LocalBlobStore)
        assert app.state.settings is settings
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert (settings.data_dir / "apprt.db").is_file()
    assert settings.admin_token_path.is_file()


def test_start_removes_stale_blob_temp_files(settings: Settings) -> None:
    stale = settings.resolved_blob_dir() / ".tmp" / "put-crashed"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"debris")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with TestClient(create_app(settings)):
        pass
    assert not stale.exists()


def test_create_app_touches_nothing_before_start(settings: Settings) -> None:
    create_app(settings)
    assert not settings.data_dir.exists()


class ConflictError(ApprtError):
    status_code = 409


def _app_with_failing_routes(settings: Settings) -> FastAPI:
    app = create_app(settings)

    @app.get("/test/plain")
    def plain() -> None:
        raise ApprtError.single("bad thing", file="app.toml", location="id", hint="fix it")

    @app.get("/test/conflict")
    def conflict() -> None:
        raise ConflictError.single("already there")

    @app.get("/test/crash")
    def crash() -> None:
        raise RuntimeError("secret internals /etc/shadow")

    @app.get("/test/items/{n}")
    def item(n: int, limit: int) -> int:
        return n

    return app


@pytest.fixture
def failing_client(settings: Settings) -> Iterator[TestClient]:
    app = _app_with_failing_routes(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_apprt_error_is_a_400_problem(failing_client: TestClient) -> None:
    response = failing_client.get("/test/plain")
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body == {
        "type": "urn:apprt:problem:invalid-input",
        "title": "invalid input",
        "status": 400,
        "detail": "app.toml:id: bad thing (fix it)",
        "instance": "/test/plain",
        "problems": [
            {"file": "app.toml", "location": "id", "reason": "bad thing", "hint": "fix it"}
        ],
    }


def test_apprt_error_subclass_chooses_its_status(failing_client: TestClient) -> None:
    response = failing_client.get("/test/conflict")
    assert response.status_code == 409
    assert response.json()["type"] == "urn:apprt:problem:conflict"


def test_http_errors_are_problems(failing_client: TestClient) -> None:
    response = failing_client.get("/nowhere")
    assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM_JSON)
    assert response.json()["title"] == "Not Found"
    response = failing_client.post("/healthz")
    assert (response.status_code, response.headers["content-type"]) == (405, PROBLEM_JSON)
    assert "GET" in response.headers["allow"]


def test_validation_errors_are_422_problems(failing_client: TestClient) -> None:
    response = failing_client.get("/test/items/notanumber")
    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM_JSON)
    body = response.json()
    assert body["type"] == "urn:apprt:problem:invalid-request"
    locations = {p["location"] for p in body["problems"]}
    assert locations == {"path.n", "query.limit"}
    assert "notanumber" not in json.dumps(body["problems"])  # input is not echoed


def test_unexpected_errors_are_500_without_internals(failing_client: TestClient) -> None:
    with structlog.testing.capture_logs() as logs:
        response = failing_client.get("/test/crash")
    assert (response.status_code, response.headers["content-type"]) == (500, PROBLEM_JSON)
    body = response.json()
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["error_id"] in body["detail"]
    logged = [e for e in logs if e["event"] == "http.unexpected_error"]
    assert logged and logged[0]["error_id"] == body["error_id"]


# -- logging ------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _our_handler() -> logging.Handler:
    handlers = [h for h in logging.getLogger().handlers if h.get_name() == "apprt"]
    assert len(handlers) == 1
    return handlers[0]


def test_logging_json_and_uvicorn_access_fields(restore_logging: None) -> None:
    configure_logging("debug", json=True)
    configure_logging("info", json=True)  # again: still one handler
    handler = _our_handler()
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/healthz", "1.1", 200),
        None,
    )
    line = json.loads(handler.format(record))
    assert line["logger"] == "uvicorn.access"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["level"] == "info" and "timestamp" in line
    assert logging.getLogger().level == logging.INFO


def test_logging_rejects_unknown_levels(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("chatty")


# -- end to end: the real `apprt serve` ---------------------------------------------


def _me(base: str, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{base}/api/v1/me", headers=headers, timeout=30)


def test_apprt_serve_end_to_end(tmp_path: Path, apprt: Callable[..., CliResult]) -> None:
    data = tmp_path / "platform"
    log = tmp_path / "serve.log"
    token_file = data / "admin.token"

    with running_server(data, log) as base:
        health = httpx.get(f"{base}/healthz", timeout=30).json()
        assert health == {"status": "ok", "version": __version__, "database": "ok"}
        assert "/api/v1/me" in httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        first = _me(base, token)
        assert first.status_code == 200 and first.json()["role"] == "platform_admin"
        assert _me(base, "apprt_wrong").status_code == 401
        # The client commands against the live platform.
        assert apprt("status", "--url", base, "--json").json()["database"] == "ok"
        me = apprt("whoami", "--url", base, "--token", token, "--json")
        assert me.exit_code == 0 and me.json()["name"] == "admin"
        refused = apprt("whoami", "--url", base, "--token", "apprt_wrong", "--json")
        assert refused.exit_code == 1 and refused.json()["problems"]
    output = log.read_text()
    assert f"listening on {base}" in output
    assert str(token_file) in output
    assert token not in output  # the secret is in the file, never in the log

    with running_server(data, log) as base:  # restart: same DB, same token
        assert token_file.read_text().strip() == token
        again = _me(base, token)
        assert again.status_code == 200
        assert again.json() == first.json()

    preset = "apprt_preset-by-the-environment-e2e"
    fresh = tmp_path / "preset"
    with running_server(fresh, log, APPRT_ADMIN_TOKEN=preset) as base:
        assert (fresh / "admin.token").read_text().strip() == preset
        assert _me(base, preset).status_code == 200
