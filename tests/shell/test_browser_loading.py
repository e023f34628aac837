"""The shell's loading contract in Debian's Chromium (docs/frontend.md): nothing comes
from the internet (network log and the page's CSP), entries are prefetched when the
browser is idle, and an unmount that never settles is cut loose after its timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.shell._platform import PASSWORD, TEST_APPS, ShellPlatform, login
from tests.shell.conftest import CRM, NOTES, SALES, Page

TIMEOUT = 20_000  # ms, for what the browser waits on
SLOW_UNMOUNT = "com.test.slow-unmount"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def app_url(web: Page, org: str, app: str) -> str:
    return f"{web.url}/#/o/{org}/apps/{app}"


def wait_health(platform: ShellPlatform, org: str, app: str, kind: str) -> dict[str, Any]:
    """What browsers reported about ``app``, once a ``kind`` error is in."""
    deadline = time.monotonic() + 60  # a guard against hanging, not a performance bound
    while True:
        health: dict[str, Any] = platform.ok(
            platform.http.get(f"/api/v1/telemetry/frontend/{org}")
        ).get(app, {})
        if health.get("errors", {}).get(kind):
            return health
        assert time.monotonic() < deadline, f"no {kind} error reported for {app}: {health}"
        time.sleep(0.2)


# -- works offline -------------------------------------------------------------------


def test_the_whole_shell_loads_nothing_but_the_platforms_origin(
    platform: ShellPlatform, web: Page
) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.locator(".tiles .tile").first.wait_for(timeout=TIMEOUT)
    # Each example app, in the page (shadow) and in a sandboxed frame.
    page.goto(app_url(web, "acme", SALES))
    sales = page.locator(f".app-container[data-app='{SALES}'] .total")
    assert sales.inner_text(timeout=TIMEOUT) == "$263,000"
    page.goto(app_url(web, "acme", CRM))
    page.locator(f".app-container[data-app='{CRM}'] table").wait_for(timeout=TIMEOUT)
    page.goto(app_url(web, "acme", NOTES))
    notes = page.frame_locator(f"iframe.app-frame[data-app='{NOTES}']")
    notes.get_by_label("New note").wait_for(timeout=TIMEOUT)
    # The marketplace, an app's details, administration and an installed app's page.
    page.get_by_role("link", name="Marketplace").click()
    page.get_by_label("Search apps").fill("notes")
    page.get_by_role("button", name="Search").click()
    result = page.locator(f".result[data-app='{NOTES}']")
    result.wait_for(timeout=TIMEOUT)
    result.get_by_role("link", name="Team Notes").click()
    page.get_by_role("heading", name="Team Notes", level=1).wait_for(timeout=TIMEOUT)
    page.locator(".version-details .permissions").wait_for(timeout=TIMEOUT)
    page.get_by_role("link", name="Administration").click()
    row = page.locator(f"tr[data-app='{SALES}']")
    row.wait_for(timeout=TIMEOUT)
    row.get_by_role("link", name="Manage").click()
    page.locator("pre.logs").wait_for(timeout=TIMEOUT)
    page.get_by_role("link", name="Apps", exact=True).click()
    page.locator(".tiles").wait_for(timeout=TIMEOUT)

    own = origin_of(web.url)
    assert urlsplit(own).hostname == "127.0.0.1"
    seen = [r.url for r in web.requests]
    elsewhere = [u for u in seen if not u.startswith(("data:", "blob:")) and origin_of(u) != own]
    assert elsewhere == []
    # The walk did load what it should have, all of it from the platform.
    paths = {urlsplit(u).path for u in seen}
    assert "/shell/static/main.js" in paths and "/shell/static/shell.css" in paths
    assert any(p.startswith("/assets/sha256/") for p in paths)
    assert any(p.startswith(f"/shell/frame/acme/{NOTES}") for p in paths)
    assert not web.errors


class _Foreign(BaseHTTPRequestHandler):
    """Another origin on loopback: serves a script that would mark the page."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b"window.__foreign = (window.__foreign || 0) + 1;\nexport const x = 1;\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def foreign() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Foreign,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_trusted_scripts_cannot_load_code_from_another_origin(
    web: Page, foreign: tuple[str, list[str]]
) -> None:
    other, hits = foreign
    page = web.page
    login(page, web.url, "ada")
    page.locator(".tiles .tile").first.wait_for(timeout=TIMEOUT)
    page.evaluate(
        """() => { window.__violations = [];
        addEventListener("securitypolicyviolation", (e) => window.__violations.push(
          { uri: e.blockedURI, directive: e.effectiveDirective, policy: e.originalPolicy })); }"""
    )
    # What the header's 'strict-dynamic' alone allows: a script carrying the page's
    # nonce, a script element created by the page's code (trust propagates), and a
    # module imported by a trusted module (the loader, given an entry on another
    # origin). Each points at another loopback origin; the second policy, added by the
    # boot script once the import map is in, refuses them before any request.
    page.evaluate(
        """([other]) => {
        const nonce = window.apprtBoot.nonce;
        const trusted = document.createElement("script");
        trusted.nonce = nonce;
        trusted.src = other + "/nonce.js";
        document.head.append(trusted);
        const created = document.createElement("script");
        created.src = other + "/created.js";
        document.head.append(created);
        const inline = document.createElement("script");
        inline.nonce = nonce;
        inline.textContent = "window.__foreign = 'inline'";
        document.head.append(inline);
        const app = { app_id: "com.test.elsewhere", name: "Elsewhere", version: "1.0.0",
          isolation: "shadow", entry: other + "/imported.js", modules: {} };
        window.apprtShell.loader.mount(app, document.createElement("div")).then(
          () => { window.__imported = "ran"; }, (e) => { window.__imported = e.kind; });
        }""",
        [other],
    )
    page.wait_for_function("() => window.__imported !== undefined", timeout=TIMEOUT)
    page.wait_for_function("() => window.__violations.length >= 4", timeout=TIMEOUT)
    violations = page.evaluate("window.__violations")
    assert sorted(v["uri"] for v in violations) == sorted(
        [f"{other}/nonce.js", f"{other}/created.js", f"{other}/imported.js", "inline"]
    )
    assert {v["directive"] for v in violations} == {"script-src-elem"}
    assert {v["policy"] for v in violations} == {"script-src 'self'"}
    assert page.evaluate("[window.__foreign, window.__imported]") == [None, "load"]
    assert hits == []
    # Fetches, images and styles to it are refused too (connect/img/style-src 'self').
    outcome = page.evaluate(
        """async ([other]) => {
        let fetched;
        try { await fetch(other + "/data.json"); fetched = "fetched"; }
        catch (e) { fetched = e.name; }
        const img = new Image();
        const loaded = await new Promise((resolve) => {
          img.onload = () => resolve("loaded"); img.onerror = () => resolve("refused");
          img.src = other + "/pixel.png"; });
        return [fetched, loaded];
        }""",
        [other],
    )
    assert outcome == ["TypeError", "refused"]
    assert hits == []
    # The shell's own modules and the apps' content-addressed ones still load.
    page.goto(app_url(web, "acme", SALES))
    total = page.locator(f".app-container[data-app='{SALES}'] .total")
    assert total.inner_text(timeout=TIMEOUT) == "$263,000"
    assert not web.errors


# -- prefetched on idle --------------------------------------------------------------


def test_the_launcher_prefetches_entries_when_the_browser_is_idle(web: Page) -> None:
    page = web.page
    page.goto(f"{web.url}/#/login")
    # Signed in with the keyboard only: the pointer never enters the page, so no tile
    # is hovered (a pointer left over the login button could land on a tile).
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.locator(".tiles .tile").first.wait_for(timeout=TIMEOUT)
    page.evaluate(
        """() => { window.__touched = [];
        for (const type of ["mouseover", "focusin"]) addEventListener(type, (e) => {
          const tile = e.target.closest && e.target.closest(".tile");
          if (tile) window.__touched.push(type + " " + tile.dataset.app); }, true); }"""
    )
    # The launcher prefetches up to eight of its apps (in-page ones that can load).
    expected = page.evaluate(
        """() => window.apprtShell.apps.filter((a) => a.frontend).slice(0, 8)
          .filter((a) => a.entry && a.isolation === "shadow" && !a.error)
          .map((a) => [a.app_id, a.entry, a.integrity])"""
    )
    assert len(expected) >= 3, expected
    assert SALES in {app for app, _, _ in expected}
    page.wait_for_function(
        """(entries) => entries.every(([, entry]) =>
          document.head.querySelector(`link[rel=modulepreload][href="${entry}"]`))""",
        arg=expected,
        timeout=TIMEOUT,
    )
    links = page.evaluate(
        """() => [...document.head.querySelectorAll("link[rel=modulepreload]")]
          .map((l) => [l.getAttribute("href"), l.integrity])"""
    )
    assert sorted(links) == sorted([entry, sri] for _, entry, sri in expected)
    assert all(sri.startswith("sha256-") for _, sri in links)
    # Fetched (each once), never run: no app is mounted, nothing was hovered.
    deadline = time.monotonic() + 60
    while any(not web.urls(entry) for _, entry, _ in expected):
        assert time.monotonic() < deadline, "a prefetched entry was never requested"
        page.wait_for_timeout(50)
    assert all(len(web.urls(web.url + entry)) == 1 for _, entry, _ in expected)
    assert page.locator(".app-host, .app-container").count() == 0
    assert page.evaluate("window.__touched") == []
    assert page.evaluate("window.apprtShell.monitor.current") is None
    assert not web.errors


# -- unmount(el) with a timeout ------------------------------------------------------


@pytest.fixture(scope="module")
def exit_org(platform: ShellPlatform) -> str:
    """An organization of its own with the app whose unmount never settles."""
    platform.publish(TEST_APPS / "slow-unmount")
    slug = platform.org("exit", "Exit Tests")
    platform.ok(platform.http.put(f"/api/v1/orgs/{slug}/members/ada", json={"role": "org_admin"}))
    platform.install(slug, SLOW_UNMOUNT)
    return slug


def test_an_unmount_that_never_settles_is_cut_loose_after_its_timeout(
    platform: ShellPlatform, web: Page, exit_org: str
) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.goto(app_url(web, exit_org, SLOW_UNMOUNT))
    app = page.locator(f".app-container[data-app='{SLOW_UNMOUNT}']")
    app.locator("p.mounted").wait_for(timeout=TIMEOUT)
    timeout_ms = page.evaluate("window.apprtShell.loader.timeouts.unmount")
    assert timeout_ms == 3000  # the documented default
    page.get_by_role("link", name="Apps", exact=True).click()
    # The shell goes on to the launcher, once the timeout has passed.
    page.locator(".tiles .tile").first.wait_for(timeout=TIMEOUT)
    waited = page.evaluate("performance.now() - window.__unmountCalledAt")
    assert waited >= timeout_ms - 50, waited
    assert page.locator(".app-host, .app-container").count() == 0
    assert "unmount will hang" not in page.locator("#view").inner_text()
    assert any(
        "unmount" in line and SLOW_UNMOUNT in line for line in web.console if "warn" in line
    ), web.console
    # Reported like a mount timeout: a timeout error in /metrics and in the app's health.
    page.evaluate("() => window.apprtShell.monitor.flush()")
    health = wait_health(platform, exit_org, SLOW_UNMOUNT, "timeout")
    assert health["last_error"] == "timeout: unmount: unmount took longer than 3 s"
    labels = [f'org="{exit_org}"', f'app="{SLOW_UNMOUNT}"', 'kind="timeout"']
    assert any(
        line.startswith("apprt_frontend_errors_total{") and all(la in line for la in labels)
        for line in platform.metrics().splitlines()
    )
    # The app opens again: a hung unmount does not wedge it.
    page.locator(f".tile[data-app='{SLOW_UNMOUNT}']").click()
    app.locator("p.mounted").wait_for(timeout=TIMEOUT)
    assert not web.errors
