"""The shell's HTTP side: page and frame policies, assets, import maps, telemetry."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.shell._platform import PASSWORD, ShellPlatform
from tests.shell.conftest import CRM, NOTES, SALES


@contextmanager
def session(platform: ShellPlatform, name: str = "ada") -> Iterator[httpx.Client]:
    """A client signed in like a browser: with the session cookie, no bearer token."""
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        platform.ok(client.post("/api/v1/login", json={"name": name, "password": PASSWORD}))
        yield client


def test_the_page_and_static_files(platform: ShellPlatform) -> None:
    page = httpx.get(f"{platform.url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in page.text
    fresh = httpx.get(f"{platform.url}/", timeout=30).headers["content-security-policy"]
    assert fresh != csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    main = httpx.get(f"{platform.url}/shell/static/main.js", timeout=30)
    assert main.status_code == 200 and main.headers["content-type"].startswith("text/javascript")
    again = httpx.get(
        f"{platform.url}/shell/static/main.js",
        headers={"if-none-match": main.headers["etag"]},
        timeout=30,
    )
    assert again.status_code == 304
    for bad in ("../views.py", "..%2Fviews.py", "lib/../../views.py", "nope.js"):
        r = httpx.get(f"{platform.url}/shell/static/{bad}", timeout=30)
        assert r.status_code == 404, bad
        assert r.headers["content-type"] == "application/problem+json"


def test_assets_are_content_addressed_and_immutable(platform: ShellPlatform) -> None:
    with session(platform) as client:
        frontends = platform.ok(client.get("/api/v1/orgs/acme/frontends"))
        sales = next(a for a in frontends["apps"] if a["app_id"] == SALES)
        entry = sales["entry"]
        r = client.get(entry)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["access-control-allow-origin"] == "*"
        assert "sandbox" in r.headers["content-security-policy"]
        digest = base64.b64encode(hashlib.sha256(r.content).digest()).decode()
        assert sales["integrity"] == f"sha256-{digest}" == sales["modules"][entry]
        assert client.get(entry, headers={"if-none-match": r.headers["etag"]}).status_code == 304
        base = entry.rsplit("/", 1)[0]
        for bad in ("../app.toml", "backend/sales_dashboard/main.py", "nope.js", "%2e%2e/app.toml"):
            r = client.get(f"{base}/{bad}", follow_redirects=True)
            assert r.status_code == 404, bad
        assert client.get(f"/assets/sha256/{'0' * 64}/index.js").status_code == 404
        assert client.get("/assets/sha256/not-a-digest/index.js").status_code == 404
    # Anyone may fetch an asset (sandboxed frames have no credentials): no secret there.
    assert httpx.get(f"{platform.url}{entry}", timeout=30).status_code == 200


def test_the_import_map_needs_a_member(platform: ShellPlatform) -> None:
    assert httpx.get(f"{platform.url}/api/v1/orgs/acme/importmap", timeout=30).status_code == 401
    platform.user("eve", org="beta")
    with session(platform, "eve") as eve:
        assert eve.get("/api/v1/orgs/acme/importmap").status_code == 404  # not revealed
        mapped = eve.get("/api/v1/orgs/beta/importmap")
        assert mapped.status_code == 200
        assert mapped.headers["content-type"].startswith("application/importmap+json")
        assert set(mapped.json()) == {"imports", "scopes", "integrity"}


def test_the_frame_document_is_sandboxed_with_its_own_map(platform: ShellPlatform) -> None:
    with session(platform) as client:
        r = client.get(f"/shell/frame/acme/{NOTES}")
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert csp.startswith("sandbox allow-scripts allow-forms;")
        assert "allow-same-origin" not in csp and "connect-src 'none'" in csp
        assert '<script type="importmap" nonce=' in r.text
        assert "/vendor/preact/preact.module.js" in r.text
        # Shadow apps have no frame; unknown apps are not found.
        assert client.get(f"/shell/frame/acme/{SALES}").status_code == 404
        assert client.get("/shell/frame/acme/com.nope.app").status_code == 404
    assert httpx.get(f"{platform.url}/shell/frame/acme/{NOTES}", timeout=30).status_code == 401


def test_frontends_describe_negotiation(platform: ShellPlatform) -> None:
    with session(platform) as client:
        apps = {
            a["app_id"]: a for a in platform.ok(client.get("/api/v1/orgs/acme/frontends"))["apps"]
        }
    crm_copy = apps[CRM]["shared"][0]
    assert (crm_copy["mode"], crm_copy["version"]) == ("shared", "10.29.8")
    assert [(r["mode"], r["version"], r["provider"]) for r in apps[SALES]["shared"]] == [
        ("shared", "10.29.8", CRM)
    ]
    assert [(r["mode"], r["version"]) for r in apps[NOTES]["shared"]] == [("own", "11.2.0")]
    assert apps[NOTES]["frame"] == f"/shell/frame/acme/{NOTES}"
    assert apps["com.test.own-copy"]["shared"][0]["mode"] == "own"
    assert apps[SALES]["gateway"] == f"/apps/acme/{SALES}/"
    assert apps["com.test.style-probe"]["gateway"] is None


def test_telemetry_is_validated_and_bounded(platform: ShellPlatform) -> None:
    with session(platform) as client:
        body = {
            "org": "acme",
            "events": [
                {"app": SALES, "kind": "load", "ms": 42.0},
                {"app": SALES, "kind": "error", "error": "mount", "message": "x"},
                {"app": "com.attacker.random-label", "kind": "load", "ms": 1.0},
            ],
        }
        r = client.post("/api/v1/telemetry/frontend", json=body)
        assert r.status_code == 202 and r.json() == {"accepted": 2}
        assert (
            client.post(
                "/api/v1/telemetry/frontend", json={"org": "acme", "events": [{"app": SALES}]}
            ).status_code
            == 422
        )
        too_many = {"org": "acme", "events": [{"app": SALES, "kind": "load"}] * 201}
        assert client.post("/api/v1/telemetry/frontend", json=too_many).status_code == 422
        assert (
            client.post(
                "/api/v1/telemetry/frontend", json={"org": "nowhere", "events": []}
            ).status_code
            == 404
        )
        health = platform.ok(client.get("/api/v1/telemetry/frontend/acme"))
    assert health[SALES]["loads"] >= 1 and health[SALES]["errors"]["mount"] >= 1
    metrics = platform.metrics()
    assert "com.attacker.random-label" not in metrics
    assert "apprt_frontend_reports_dropped_total" in metrics
    assert (
        httpx.post(f"{platform.url}/api/v1/telemetry/frontend", json=body, timeout=30).status_code
        == 401
    )
