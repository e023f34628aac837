"""The upload pipeline: each check, the policy, idempotency, and no orphan blobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from apprt.blobs import BlobStore
from apprt.package import generate_keypair
from tests.registry.conftest import UPLOADS, PublisherFixture, make_publisher, upload

PROBLEM = "application/problem+json"


def blobs(client: TestClient) -> set[str]:
    app = client.app
    assert isinstance(app, FastAPI)
    store: BlobStore = app.state.blob_store
    return set(store.iter_digests())


def checks(body: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in body["checks"]}


def rejected(client: TestClient, response: Any, status: int) -> dict[str, Any]:
    """Assert a refusal and return the recorded job."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    location = response.headers["location"]
    job = client.get(location, headers=client.headers).json()
    assert job["state"] == "rejected"
    return dict(job)


@pytest.fixture
def client(app_client: TestClient, publisher: PublisherFixture) -> TestClient:
    """The app client authenticated as the publisher."""
    app_client.headers["Authorization"] = f"Bearer {publisher.token}"
    return app_client


def test_a_clean_package_is_published_with_every_check_recorded(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    r = upload(client, {}, make_package(tags=["greeting"]))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "published" and not body["idempotent"]
    assert r.headers["location"] == f"{UPLOADS}/{body['id']}"
    assert set(checks(body).values()) == {"pass"}
    assert list(checks(body)) == [
        "archive", "manifest", "publisher", "signature", "immutability", "compatibility",
        "security", "secrets", "frontend", "quality", "permissions",
    ]  # fmt: skip
    assert [h["to_state"] for h in body["history"]] == ["uploaded", "validating", "published"]
    assert all(h["app_id"] == "com.example.hello" for h in body["history"])
    assert client.get(f"{UPLOADS}/{body['id']}").json() == body
    version = client.get("/api/v1/registry/apps/com.example.hello/versions/1.0.0").json()
    assert version["state"] == "published" and version["sha256"] == body["sha256"]
    assert body["sha256"] in blobs(client)


def test_identical_bytes_are_idempotent_different_bytes_a_409(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    first = make_package()
    assert upload(client, {}, first).status_code == 201
    again = upload(client, {}, first)
    assert again.status_code == 200
    assert again.json()["idempotent"] is True and again.json()["state"] == "published"
    assert checks(again.json())["security"] == "skipped"
    before = blobs(client)
    other = make_package(description="Says hello differently.")
    job = rejected(client, upload(client, {}, other), 409)
    assert checks(job)["immutability"] == "fail"
    assert "immutable" in job["checks"][4]["problems"][0]["reason"]
    assert blobs(client) == before  # the refused package's blob is gone


def test_new_versions_must_be_greater_unless_backport(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    assert upload(client, {}, make_package(version="2.0.0")).status_code == 201
    r = upload(client, {}, make_package(version="1.5.0"))
    assert r.status_code == 409
    assert "--backport" in r.json()["problems"][0]["hint"]
    r = upload(client, {}, make_package(version="1.5.0"), backport="true")
    assert r.status_code == 201, r.text
    assert r.json()["backport"] is True
    versions = client.get("/api/v1/registry/apps/com.example.hello/versions").json()
    assert [v["version"] for v in versions] == ["2.0.0", "1.5.0"]


def test_signature_is_required_from_an_active_key(
    app_client: TestClient,
    client: TestClient,
    admin_headers: dict[str, str],
    publisher: PublisherFixture,
    make_package: Callable[..., Path],
    tmp_path: Path,
) -> None:
    job = rejected(client, upload(client, {}, make_package(key=None)), 422)
    assert checks(job)["signature"] == "fail" and checks(job)["security"] == "skipped"
    stranger = generate_keypair(tmp_path / "stranger")
    job = rejected(client, upload(client, {}, make_package(key=stranger.private)), 422)
    assert "unknown key" in job["checks"][3]["problems"][0]["reason"]
    revoke = app_client.post(
        f"/api/v1/registry/publishers/example/keys/{publisher.key_id}/revoke",
        headers=admin_headers,
    )
    assert revoke.status_code == 200
    r = upload(client, {}, make_package())
    assert r.status_code == 422
    assert "revoked key" in r.json()["problems"][0]["reason"]
    assert blobs(client) == set()


def test_publisher_scope_and_ownership_are_403(
    app_client: TestClient,
    client: TestClient,
    admin_headers: dict[str, str],
    make_package: Callable[..., Path],
    tmp_path: Path,
) -> None:
    r = upload(client, {}, make_package(publisher="acme"))
    job = rejected(client, r, 403)
    assert checks(job)["publisher"] == "fail"
    r = upload(client, {}, make_package(app_id="org.elsewhere.app"))
    assert r.status_code == 403 and "scopes" in r.json()["problems"][0]["reason"]
    assert upload(client, {}, make_package()).status_code == 201
    # acme, even with a scope covering it, cannot publish example's app id.
    acme = make_publisher(app_client, admin_headers, tmp_path, "acme", ("com.*",))
    pkg = make_package(publisher="acme", version="2.0.0", key=acme.key)
    r = upload(app_client, acme.headers, pkg)
    assert r.status_code == 403 and "belongs to another publisher" in r.text
    # The platform admin does not upload (it has no publisher).
    r = upload(app_client, admin_headers, make_package(version="3.0.0"))
    assert r.status_code == 403


def test_compatibility_platform_and_dependencies(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    job = rejected(client, upload(client, {}, make_package(platform="^2.0")), 422)
    assert checks(job)["compatibility"] == "fail"
    assert "1.0.0" in job["checks"][5]["problems"][0]["reason"]
    needs = {"com.example.base": "^1.2"}
    r = upload(client, {}, make_package(dependencies=needs))
    assert r.status_code == 422 and "com.example.base" in r.text
    assert (
        upload(client, {}, make_package(app_id="com.example.base", version="1.3.0")).status_code
        == 201
    )
    r = upload(client, {}, make_package(dependencies=needs))
    assert r.status_code == 201, r.text
    compat = next(c for c in r.json()["checks"] if c["name"] == "compatibility")
    assert compat["details"]["resolved"] == {"com.example.base": "1.3.0"}


def test_security_high_fails_risky_imports_go_to_review(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    high = "import hashlib\n\ndef digest(data):\n    return hashlib.md5(data).hexdigest()\n"
    job = rejected(
        client, upload(client, {}, make_package(files={"backend/hello/bad.py": high})), 422
    )
    security = job["checks"][6]
    assert security["status"] == "fail" and "B324" in security["problems"][0]["reason"]
    # `# nosec` does not silence the registry.
    quiet = high.replace(".hexdigest()", ".hexdigest()  # nosec")
    r = upload(client, {}, make_package(files={"backend/hello/bad.py": quiet}))
    assert r.status_code == 422
    risky = "import ctypes\nimport os\n\ndef run():\n    os.system('true')\n"
    r = upload(client, {}, make_package(files={"backend/hello/risky.py": risky}))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "pending_review"
    security = body["checks"][6]
    assert security["status"] == "warn" and security["needs_review"]
    reasons = " ".join(p["reason"] for p in security["problems"])
    assert "import ctypes" in reasons and "os.system" in reasons


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n", "private key"),
        ("AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'\n", "AWS access key id"),
        ("token = 'ghp_" + "a1B2c3D4e5" * 4 + "'\n", "GitHub token"),
        ("db_password = 'x7Gq!92kLm#Zp4Rt8Wv2Ny'\n", "secret assigned to 'db_password'"),
    ],
)
def test_secrets_in_any_file_fail(
    client: TestClient, make_package: Callable[..., Path], content: str, kind: str
) -> None:
    r = upload(client, {}, make_package(files={"backend/hello/settings.py": content}))
    job = rejected(client, r, 422)
    secrets = job["checks"][7]
    assert secrets["status"] == "fail"
    assert secrets["problems"][0]["reason"] == f"looks like a {kind}"
    assert secrets["problems"][0]["location"] == "line 1"
    if "'" in content:
        assert content.split("'")[-2][:12] not in r.text  # the secret is never echoed


def test_low_entropy_placeholders_are_not_secrets(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    content = "password = 'changeme-changeme-changeme'\nAPI_TOKEN = 'xxxxxxxxxxxxxxxxxxxxxxxx'\n"
    r = upload(client, {}, make_package(files={"backend/hello/settings.py": content}))
    assert r.status_code == 201, r.text


def test_frontend_eval_and_budget(
    client: TestClient,
    make_package: Callable[..., Path],
    registry_config: Any,
) -> None:
    js = "export function mount(el) {\n  // eval( in a comment is fine\n  eval('1+1');\n}\n"
    js += "export function unmount(el) {}\n"
    pkg = make_package(frontend=True, files={"frontend/index.js": js})
    job = rejected(client, upload(client, {}, pkg), 422)
    frontend = job["checks"][8]
    assert frontend["status"] == "fail" and len(frontend["problems"]) == 1
    assert frontend["problems"][0]["location"] == "line 3"
    registry_config.frontend_budget = 10
    r = upload(client, {}, make_package(frontend=True))
    assert r.status_code == 422 and "budget" in r.text


def test_a_frontend_entry_without_the_host_contract_is_refused(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    js = "// export function unmount(el) {}\nexport default function mount(el) {}\n"
    pkg = make_package(frontend=True, files={"frontend/index.js": js})
    job = rejected(client, upload(client, {}, pkg), 422)
    frontend = job["checks"][8]
    assert frontend["status"] == "fail"
    assert [(p["file"], p["location"]) for p in frontend["problems"]] == [
        ("frontend/index.js", "exports")
    ]
    reason = frontend["problems"][0]["reason"]
    assert "mount" in reason and "unmount" in reason


def test_quality_warnings_do_not_block(
    client: TestClient, make_package: Callable[..., Path]
) -> None:
    r = upload(client, {}, make_package(readme=False, icon=False))
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "published"
    assert checks(body)["quality"] == "warn"
    assert len(body["checks"][9]["problems"]) == 2


def test_new_and_sensitive_permissions_send_to_review(
    app_client: TestClient,
    client: TestClient,
    admin_headers: dict[str, str],
    make_package: Callable[..., Path],
) -> None:
    r = upload(client, {}, make_package(permissions=["state"]))
    assert r.json()["state"] == "pending_review"
    perms = r.json()["checks"][10]
    assert perms["details"]["new"] == ["state"] and perms["details"]["previous_version"] is None
    approve = app_client.post(
        "/api/v1/registry/apps/com.example.hello/versions/1.0.0/approve", headers=admin_headers
    )
    assert approve.status_code == 200 and approve.json()["state"] == "published"
    assert client.get(f"{UPLOADS}/{r.json()['id']}").json()["state"] == "published"
    # Same permissions again: auto-approved.
    r = upload(client, {}, make_package(version="1.1.0", permissions=["state"]))
    assert r.json()["state"] == "published"
    # A new permission, and a sensitive one.
    r = upload(
        client,
        {},
        make_package(version="1.2.0", permissions=["state", "network:api.example.com:443"]),
    )
    perms = r.json()["checks"][10]
    assert r.json()["state"] == "pending_review"
    assert perms["details"]["new"] == ["network:api.example.com:443"]
    assert perms["details"]["sensitive"] == ["network:api.example.com:443"]
    assert perms["details"]["previous_version"] == "1.1.0"


def test_non_package_bytes_and_bad_bodies_are_4xx(client: TestClient) -> None:
    for body in [b"", b"hello", b"\x1f\x8b\x08\x00garbage", b"PK\x03\x04" + b"\0" * 100]:
        r = upload(client, {}, body)
        job = rejected(client, r, 422)
        assert checks(job)["archive"] == "fail" and checks(job)["manifest"] == "skipped"
    r = client.post(UPLOADS, content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM
    r = client.post(UPLOADS, content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400
    assert blobs(client) == set()


def test_multipart_upload(client: TestClient, make_package: Callable[..., Path]) -> None:
    pkg = make_package()
    r = client.post(
        UPLOADS,
        files={"file": ("hello-1.0.0.apppkg", pkg.read_bytes(), "application/octet-stream")},
        data={"note": "ignored"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "hello-1.0.0.apppkg"
    r = client.post(UPLOADS, files={"other": ("x", b"data")})
    assert r.status_code == 400 and "'file'" in r.text


def test_oversize_uploads_are_cut_with_413_and_leave_nothing(
    client: TestClient, registry_config: Any, settings: Any
) -> None:
    registry_config.max_upload_bytes = 1000

    def body() -> Any:  # a streamed body without Content-Length
        for _ in range(100):
            yield b"\0" * 1000

    r = client.post(UPLOADS, content=body(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413, r.text
    assert r.json()["type"] == "urn:apprt:problem:upload-too-large"
    r = client.post(UPLOADS, content=b"\0" * 200_000)
    assert r.status_code == 413
    assert blobs(client) == set()
    tmp = settings.resolved_blob_dir() / ".tmp"
    assert not any(tmp.iterdir())
    assert client.get(UPLOADS).json() == []  # no job either


def test_unknown_upload_is_404_and_others_uploads_invisible(
    app_client: TestClient,
    client: TestClient,
    admin_headers: dict[str, str],
    make_package: Callable[..., Path],
    tmp_path: Path,
) -> None:
    assert client.get(f"{UPLOADS}/999").status_code == 404
    uid = upload(client, {}, make_package()).json()["id"]
    acme = make_publisher(app_client, admin_headers, tmp_path, "acme", ("com.acme.*",))
    r = app_client.get(f"{UPLOADS}/{uid}", headers=acme.headers)
    assert r.status_code == 404
    assert app_client.get(f"{UPLOADS}/{uid}", headers=admin_headers).status_code == 200
    assert [u["id"] for u in app_client.get(UPLOADS, headers=admin_headers).json()] == [uid]
