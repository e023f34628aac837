"""The web shell in Debian's Chromium (Playwright), against a real ``apprt serve``.

Each test opens a fresh browser context (empty cache, no cookies) and signs in.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.shell._platform import TEST_APPS, ShellPlatform, login
from tests.shell.conftest import CRM, NOTES, SALES, Page, variant

TIMEOUT = 20_000  # ms, for what the browser waits on


def app_url(web: Page, org: str, app: str, beside: str | None = None) -> str:
    return f"{web.url}/#/o/{org}/apps/{app}" + (f"?beside={beside}" if beside else "")


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of ``/metrics`` (labels in any order)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.index("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_metric(platform: ShellPlatform, name: str, minimum: float = 1, **labels: str) -> float:
    deadline = time.monotonic() + 60  # a guard against hanging, not a performance bound
    while True:
        value = metric(platform.metrics(), name, **labels)
        if value is not None and value >= minimum:
            return value
        assert time.monotonic() < deadline, f"{name}{labels} stayed at {value}"
        time.sleep(0.2)


def digest_of(platform: ShellPlatform, org: str, app: str) -> str:
    apps = platform.ok(platform.http.get(f"/api/v1/orgs/{org}/frontends"))["apps"]
    digest: str = next(a["digest"] for a in apps if a["app_id"] == app)
    return digest


def flush(web: Page) -> None:
    web.page.evaluate("() => window.apprtShell.monitor.flush()")


# -- signing in and the launcher -----------------------------------------------------


def test_login_refuses_a_wrong_password_then_opens_the_launcher(
    web: Page, shots: Callable[..., Path]
) -> None:
    page = web.page
    page.goto(f"{web.url}/")
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("not the password at all")
    shots(page, "01-login")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text(timeout=TIMEOUT) == "Wrong user name or password."
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    tiles = page.locator(".tiles .tile")
    tiles.first.wait_for(timeout=TIMEOUT)
    names = tiles.locator(".tile-name").all_inner_texts()
    assert {"Sales Dashboard", "CRM Connector", "Team Notes", "Style Probe"} <= set(names)
    # The session is an HttpOnly cookie: the page's scripts cannot read it.
    assert page.evaluate("document.cookie") == ""
    assert any(c["name"] == "apprt_session" and c["httpOnly"] for c in web.context.cookies())
    # Hovering a tile prefetches its entry module (with its SRI) without running it.
    page.hover(".tile[data-app='com.example.sales-dashboard']")
    preload = page.locator("link[rel=modulepreload][href*='/assets/sha256/']")
    preload.first.wait_for(state="attached", timeout=TIMEOUT)
    assert preload.first.get_attribute("integrity").startswith("sha256-")
    shots(page, "02-launcher")
    assert not web.errors


def test_the_page_is_served_with_a_strict_csp(platform: ShellPlatform, web: Page) -> None:
    # Straight to the login route: "/" without a session reloads to it, and evaluating
    # during that reload would race the navigation.
    response = web.page.goto(f"{web.url}/#/login")
    assert response is not None
    web.page.get_by_label("User name").wait_for(timeout=TIMEOUT)
    csp = response.headers["content-security-policy"]
    assert "script-src 'nonce-" in csp and "'strict-dynamic'" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    # Injected markup runs nothing: inline handlers are refused by the policy.
    web.page.evaluate(
        """() => { const d = document.createElement('div');
        d.innerHTML = '<img src="data:," onerror="window.__injected = true">';
        document.body.append(d); }"""
    )
    deadline = time.monotonic() + 60
    while not any("Content Security Policy" in line for line in web.console):
        assert time.monotonic() < deadline, web.console
        web.page.wait_for_timeout(50)
    assert web.page.evaluate("window.__injected === undefined")


# -- apps: loading, isolation, failures ---------------------------------------------


def test_opens_an_app_and_a_second_one_beside_it(web: Page, shots: Callable[..., Path]) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.locator(".tile[data-app='com.example.sales-dashboard']").click()
    total = page.locator(".app-container[data-app='com.example.sales-dashboard'] .total")
    assert total.inner_text(timeout=TIMEOUT) == "$263,000"
    shots(page, "03-app-sales-dashboard")
    # Navigating inside the shell and back remounts it; the CRM beside it shares the page.
    page.goto(app_url(web, "acme", SALES, beside=CRM))
    crm = page.locator(".app-container[data-app='com.example.crm-connector']")
    assert "Analytical engine upgrade" in crm.locator("table").inner_text(timeout=TIMEOUT)
    crm.get_by_label("Search contacts").fill("grace")
    crm.get_by_role("button", name="Search").click()
    assert "grace@cobol.example" in crm.locator("ul").inner_text(timeout=TIMEOUT)
    assert total.inner_text(timeout=TIMEOUT) == "$263,000"
    shots(page, "04-apps-side-by-side")
    assert not web.errors


def test_shadow_isolation_holds_both_ways(web: Page) -> None:
    page = web.page
    login(page, web.url, "ada")
    # The page itself gets aggressive styles (CSSOM: the CSP forbids inline <style>).
    page.evaluate(
        """() => {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(`
          p, span { color: rgb(0, 0, 255) !important; font-family: fantasy !important; }
          body { letter-spacing: 3px; color: rgb(0, 0, 255); font-style: italic; }`);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }"""
    )
    page.goto(app_url(web, "acme", "com.test.style-probe"))
    probe = page.locator(".app-container[data-app='com.test.style-probe']")
    probe.locator("h1").wait_for(timeout=TIMEOUT)

    def style(locator: Any, prop: str) -> str:
        value: str = locator.evaluate(f"e => getComputedStyle(e).getPropertyValue('{prop}')")
        return value

    # In: nothing of the page's styles reaches the app (rules or inheritance).
    plain, bare = probe.locator("p.plain"), probe.locator("span.bare")
    assert style(plain, "color") != "rgb(0, 0, 255)"
    assert "fantasy" not in style(plain, "font-family")
    assert style(plain, "font-family") == "monospace"  # the app's own rule
    assert style(bare, "color") == "rgb(27, 31, 36)"  # from the shell's :host baseline
    assert style(bare, "font-style") == "normal"
    assert style(bare, "letter-spacing") == "7px"  # the app's `*` rule, not the page's 3px
    assert style(probe.locator("h1"), "color") == "rgb(255, 0, 0)"
    # Out: the app's `h1 { color: red }` and `* { letter-spacing }` stay inside.
    shell_title = page.locator("h1.app-title")
    assert style(shell_title, "color") != "rgb(255, 0, 0)"
    assert style(page.locator(".topbar .brand"), "letter-spacing") != "7px"
    assert style(page.locator(".topbar .user"), "letter-spacing") != "7px"


def test_a_broken_app_shows_its_error_card_while_another_keeps_working(
    platform: ShellPlatform, web: Page, shots: Callable[..., Path]
) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.goto(app_url(web, "acme", SALES, beside="com.test.broken-throw"))
    card = page.locator(".error-card[data-app='com.test.broken-throw']")
    card.wait_for(timeout=TIMEOUT)
    assert card.get_attribute("data-kind") == "mount"
    assert "boom: the test app failed to start" in card.inner_text()
    sales = page.locator(".app-container[data-app='com.example.sales-dashboard']")
    assert sales.locator(".total").inner_text(timeout=TIMEOUT) == "$263,000"
    # The other app still works: its button refreshes it.
    sales.get_by_role("button", name="Refresh").click()
    assert sales.locator(".total").inner_text(timeout=TIMEOUT) == "$263,000"
    assert "about to fail" not in page.locator("#view").inner_text()  # its DOM was cleared
    shots(page, "05-error-card")
    # A module that is not in the package: a 404, named.
    page.goto(app_url(web, "acme", "com.test.broken-missing"))
    missing = page.locator(".error-card[data-app='com.test.broken-missing']")
    missing.wait_for(timeout=TIMEOUT)
    assert missing.get_attribute("data-kind") == "not_found"
    assert "missing.js" in missing.inner_text() and "404" in missing.inner_text()
    # Try again: still a card; and the shell still navigates.
    missing.get_by_role("button", name="Try again").click()
    page.locator(".error-card[data-app='com.test.broken-missing']").wait_for(timeout=TIMEOUT)
    page.get_by_role("link", name="Marketplace").click()
    page.get_by_role("heading", name="Marketplace").wait_for(timeout=TIMEOUT)
    assert not web.errors
    flush(web)
    wait_metric(
        platform,
        "apprt_frontend_errors_total",
        org="acme",
        app="com.test.broken-throw",
        kind="mount",
    )
    wait_metric(
        platform,
        "apprt_frontend_errors_total",
        org="acme",
        app="com.test.broken-missing",
        kind="not_found",
    )


def test_a_mount_that_never_settles_times_out(platform: ShellPlatform, web: Page) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.evaluate(
        "() => { window.apprtShell.loader.timeouts = { load: 15000, mount: 400, unmount: 300 }; }"
    )
    page.goto(app_url(web, "acme", "com.test.slow-mount"))
    card = page.locator(".error-card[data-app='com.test.slow-mount']")
    card.wait_for(timeout=TIMEOUT)
    assert card.get_attribute("data-kind") == "timeout"
    assert "mount took longer than 0.4 s" in card.inner_text()
    assert "still starting" not in page.locator("#view").inner_text()
    page.get_by_role("link", name="Apps", exact=True).click()
    page.locator(".tiles").wait_for(timeout=TIMEOUT)
    flush(web)
    wait_metric(
        platform,
        "apprt_frontend_errors_total",
        org="acme",
        app="com.test.slow-mount",
        kind="timeout",
    )


def test_the_org_switcher_reloads_with_the_other_organizations_apps(web: Page) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.locator(".tile[data-app='com.test.style-probe']").wait_for(timeout=TIMEOUT)
    page.select_option("#org-switcher", "beta")
    page.locator(".tile[data-app='com.test.strict-widget']").wait_for(timeout=TIMEOUT)
    assert page.locator(".tile[data-app='com.test.style-probe']").count() == 0
    assert page.evaluate("window.apprtBoot.org") == "beta"
    assert page.locator(".tile[data-app='com.test.strict-widget'] .badge-error").count() == 1


def test_an_app_navigates_inside_itself_without_remounting(web: Page) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.goto(app_url(web, "acme", "com.test.style-probe"))
    probe = page.locator(".app-container[data-app='com.test.style-probe']")
    route = probe.locator("output.route")
    expect(route).to_have_text(re.compile(r"^route /, mounted (\d+)"), timeout=TIMEOUT)
    mounts = route.inner_text().rsplit(" ", 2)[1]
    probe.get_by_role("button", name="Details").click()
    expect(route).to_have_text(f"route /details/7, mounted {mounts} time(s)", timeout=TIMEOUT)
    assert page.evaluate("location.hash") == "#/o/acme/apps/com.test.style-probe/details/7"
    page.go_back()
    expect(route).to_have_text(f"route /, mounted {mounts} time(s)", timeout=TIMEOUT)


def test_a_tampered_asset_is_refused(platform: ShellPlatform, web: Page) -> None:
    app = "com.test.tamper-target"
    file = platform.tree(digest_of(platform, "acme", app)) / "frontend" / "index.js"
    original = file.read_bytes()
    file.chmod(0o644)
    try:
        file.write_text(
            "window.__tampered = true;\n"
            "export function mount(el) { el.textContent = 'tampered'; }\n"
            "export function unmount() {}\n"
        )
        page = web.page
        login(page, web.url, "ada")
        page.goto(app_url(web, "acme", app))
        card = page.locator(f".error-card[data-app='{app}']")
        card.wait_for(timeout=TIMEOUT)
        assert card.get_attribute("data-kind") == "integrity"
        assert "integrity" in card.inner_text()
        assert page.evaluate("window.__tampered === undefined")  # never ran
        assert any("integrity" in line for line in web.console)
        flush(web)
        wait_metric(platform, "apprt_frontend_errors_total", org="acme", app=app, kind="integrity")
    finally:
        file.write_bytes(original)
        file.chmod(0o444)


def test_a_shared_dependency_is_fetched_once(platform: ShellPlatform, web: Page) -> None:
    page = web.page
    login(page, web.url, "ada")
    shared = page.evaluate("window.apprtBoot.map.imports.preact")
    crm, sales = digest_of(platform, "acme", CRM), digest_of(platform, "acme", SALES)
    # Negotiated: ^10.19.0 (sales, bundles 10.24.3) and ^10.22.0 (crm, bundles 10.29.8)
    # share the highest copy satisfying both: the CRM's.
    assert shared == f"/assets/sha256/{crm}/vendor/preact/preact.module.js"
    page.goto(app_url(web, "acme", SALES))
    page.locator(".app-container .total").wait_for(timeout=TIMEOUT)
    page.goto(app_url(web, "acme", CRM))
    page.locator(".app-container[data-app='com.example.crm-connector'] table").wait_for(
        timeout=TIMEOUT
    )
    assert len(web.urls(shared)) == 1
    assert web.urls(f"/assets/sha256/{sales}/vendor/") == []  # its own copy: never needed
    # An app on Preact 11 runs on its own copy, scoped to it, in the same page.
    own = digest_of(platform, "acme", "com.test.own-copy")
    scopes = page.evaluate("window.apprtBoot.map.scopes")
    assert scopes[f"/assets/sha256/{own}/"] == {
        "preact": f"/assets/sha256/{own}/vendor/preact/preact.module.js"
    }
    page.goto(app_url(web, "acme", "com.test.own-copy"))
    page.locator("p.own").wait_for(timeout=TIMEOUT)
    assert len(web.urls(f"/assets/sha256/{own}/vendor/preact/preact.module.js")) == 1
    page.goto(app_url(web, "acme", SALES))
    page.locator(".app-container .total").wait_for(timeout=TIMEOUT)
    assert len(web.urls(shared)) == 1
    assert not web.errors


def test_a_strict_singleton_that_cannot_be_met_shows_a_clear_card(web: Page) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.goto(app_url(web, "beta", "com.test.strict-widget", beside=SALES))
    card = page.locator(".error-card[data-app='com.test.strict-widget']")
    card.wait_for(timeout=TIMEOUT)
    assert card.get_attribute("data-kind") == "dependency"
    text = card.inner_text()
    assert "preact ^11.0.0" in text and "single copy" in text and "strict" in text
    total = page.locator(".app-container[data-app='com.example.sales-dashboard'] .total")
    assert total.inner_text(timeout=TIMEOUT) == "$263,000"


def test_an_iframe_app_cannot_reach_the_host(web: Page, shots: Callable[..., Path]) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.goto(app_url(web, "acme", "com.test.iframe-probe"))
    iframe = page.locator("iframe.app-frame[data-app='com.test.iframe-probe']")
    iframe.wait_for(timeout=TIMEOUT)
    assert iframe.get_attribute("sandbox") == "allow-scripts allow-forms"
    frame = page.frame_locator("iframe.app-frame[data-app='com.test.iframe-probe']")
    results = frame.locator("#results")
    results.wait_for(timeout=TIMEOUT)

    def outcome(name: str) -> str:
        text: str = results.locator(f"li[data-probe='{name}']").inner_text()
        return text

    assert outcome("parent-dom") == "blocked: SecurityError"
    assert outcome("top-dom") == "blocked: SecurityError"
    assert outcome("cookie") == "blocked: SecurityError"
    assert outcome("storage") == "blocked: SecurityError"
    assert outcome("direct-fetch").startswith("blocked")  # connect-src 'none'
    assert outcome("absolute-fetch").startswith("blocked")
    assert outcome("bridge-escape") == "blocked: TypeError"  # leaves the app's backend
    assert outcome("bridge-no-backend") == "blocked: NoBackendError"
    assert outcome("publish-denied") == "blocked: NotAllowedError"
    assert frame.locator("#identity").inner_text() == "ada in acme"
    # A sandboxed iframe app with a backend works through the bridge, authenticated.
    page.goto(app_url(web, "acme", NOTES))
    notes = page.frame_locator("iframe.app-frame[data-app='com.example.team-notes']")
    notes.get_by_label("New note").fill("Ship the shell")
    notes.get_by_role("button", name="Add").click()
    assert "ada" in notes.locator("ul").inner_text(timeout=TIMEOUT)
    assert "Ship the shell" in notes.locator("ul").inner_text()
    page.locator(".toast", has_text="Note added").wait_for(timeout=TIMEOUT)
    shots(page, "06-iframe-app")
    assert not web.errors


def test_the_event_bus_checks_permissions(platform: ShellPlatform, web: Page) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.goto(app_url(web, "acme", "com.test.bus-probe", beside=SALES))
    probe = page.locator(".app-container[data-app='com.test.bus-probe']")
    received = probe.locator("ul.received li")
    received.first.wait_for(timeout=TIMEOUT)
    assert received.first.inner_text().startswith(
        "sales.updated from com.example.sales-dashboard: "
    )
    assert '"pipeline_total":263000' in received.first.inner_text()
    checks = probe.locator("ul.checks")
    assert checks.locator("[data-check='publish-denied']").inner_text() == (
        "refused: NotAllowedError"
    )
    assert checks.locator("[data-check='subscribe-denied']").inner_text() == (
        "refused: NotAllowedError"
    )
    assert checks.locator("[data-check='app-scoped']").inner_text() == "app:ping pong"
    flush(web)
    wait_metric(platform, "apprt_frontend_long_tasks_total", org="acme", app="com.test.bus-probe")


# -- monitoring ----------------------------------------------------------------------


def test_load_and_mount_times_and_a_leak_reach_the_metrics(
    platform: ShellPlatform, web: Page
) -> None:
    page = web.page
    login(page, web.url, "ada")
    cdp = web.context.new_cdp_session(page)

    def cycles(app: str, ready: str, n: int) -> None:
        for _ in range(n):
            page.goto(app_url(web, "acme", app))
            page.locator(ready).first.wait_for(timeout=TIMEOUT)
            page.goto(f"{web.url}/#/o/acme")
            page.locator(".tiles").wait_for(timeout=TIMEOUT)
            cdp.send("HeapProfiler.collectGarbage")
            page.wait_for_timeout(50)

    cycles("com.test.leaky", ".app-container[data-app='com.test.leaky'] .app-root", 6)
    cycles(SALES, ".app-container .total", 6)
    cdp.send("HeapProfiler.collectGarbage")
    page.wait_for_timeout(300)
    flush(web)
    wait_metric(platform, "apprt_frontend_suspected_leaks_total", org="acme", app="com.test.leaky")
    text = platform.metrics()
    assert (metric(text, "apprt_frontend_load_seconds_count", org="acme", app=SALES) or 0) >= 6
    assert (metric(text, "apprt_frontend_mount_seconds_count", org="acme", app=SALES) or 0) >= 6
    assert not metric(text, "apprt_frontend_suspected_leaks_total", org="acme", app=SALES)
    health = platform.ok(platform.http.get("/api/v1/telemetry/frontend/acme"))
    assert health["com.test.leaky"]["leak_suspected"] is True
    assert health["com.test.leaky"]["leak"]["retained"] >= 2
    assert health[SALES]["leak_suspected"] is False


# -- marketplace, administration, reviews --------------------------------------------


STEP_RECORDER = """() => {
  window.__steps = [];
  new MutationObserver((records) => {
    for (const r of records) {
      const el = r.target;
      if (el.classList && el.classList.contains("step")) {
        window.__steps.push([el.dataset.step, el.dataset.state]);
      }
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
}"""


def test_install_from_the_marketplace_with_live_progress_then_uninstall(
    platform: ShellPlatform, web: Page, shots: Callable[..., Path]
) -> None:
    page = web.page
    login(page, web.url, "ada")
    page.goto(f"{web.url}/#/o/shop/market")
    page.get_by_label("Search apps").fill("sales")
    page.get_by_role("button", name="Search").click()
    result = page.locator(".result[data-app='com.example.sales-dashboard']")
    result.wait_for(timeout=TIMEOUT)
    shots(page, "07-marketplace")
    result.get_by_role("link", name="Sales Dashboard").click()
    page.get_by_role("heading", name="Sales Dashboard", level=1).wait_for(timeout=TIMEOUT)
    permissions = page.locator(".version-details .permissions").inner_text()
    assert "tools:call:crm.*" in permissions and "events:publish:sales.updated" in permissions
    assert "1.3.0 (published)" in page.locator("#version").inner_text()
    shots(page, "08-app-details")
    page.get_by_role("button", name="Install").click()
    dialog = page.locator("dialog.consent")
    dialog.wait_for(timeout=TIMEOUT)
    assert "com.example.crm-connector 1.2.0" in dialog.inner_text()  # the dependency
    assert "read deals and contacts from the CRM Connector" in dialog.inner_text()  # a reason
    shots(page, "09-consent")
    # Consent is required: the form does not submit without it.
    dialog.get_by_role("button", name="Install").click()
    assert dialog.is_visible()
    dialog.get_by_role("checkbox").check()
    page.evaluate(STEP_RECORDER)
    dialog.get_by_role("button", name="Install").click()
    summary = page.locator(".job-summary[data-state]")
    summary.wait_for(timeout=120_000)
    assert summary.get_attribute("data-state") == "succeeded"
    steps = page.locator(".steps .step")
    assert steps.count() >= 5
    assert set(steps.evaluate_all("els => els.map(e => e.dataset.state)")) == {"done"}
    seen = page.evaluate("window.__steps")
    running = [name for name, state in seen if state == "running"]
    assert len(running) >= 3, seen  # the steps were followed live, one after another
    assert running == [
        s for s in steps.evaluate_all("els => els.map(e => e.dataset.step)") if s in running
    ]
    shots(page, "10-install-progress")
    page.get_by_role("link", name="Open Sales Dashboard").click()
    total = page.locator(".app-container[data-app='com.example.sales-dashboard'] .total")
    assert total.inner_text(timeout=TIMEOUT) == "$263,000"
    # Administration: state, health, logs; then uninstall with its own progress.
    page.goto(f"{web.url}/#/o/shop/admin")
    row = page.locator("tr[data-app='com.example.sales-dashboard']")
    row.wait_for(timeout=TIMEOUT)
    assert "running" in row.inner_text() or "installed" in row.inner_text()
    shots(page, "11-administration")
    row.get_by_role("link", name="Manage").click()
    page.get_by_role("button", name="Check the backend").click()
    expect(page.locator(".health-result")).to_have_text(re.compile(r"^healthy"), timeout=TIMEOUT)
    page.locator("pre.logs").wait_for(timeout=TIMEOUT)
    shots(page, "12-app-administration", full=True)
    page.get_by_role("button", name="Uninstall Sales Dashboard").click()
    page.locator("dialog").get_by_role("button", name="Uninstall").click()
    done = page.locator(".job-summary[data-state]")
    done.wait_for(timeout=60_000)
    assert done.get_attribute("data-state") == "succeeded"
    installed = platform.ok(platform.http.get("/api/v1/orgs/shop/installations"))
    assert [i["app_id"] for i in installed] == [CRM]
    assert not web.errors


def test_platform_admins_review_the_queue(
    platform: ShellPlatform, web: Page, tmp_path: Path, shots: Callable[..., Path]
) -> None:
    app = variant(
        tmp_path,
        TEST_APPS / "style-probe",
        {
            'version = "1.0.0"': 'version = "1.0.1"',
            'platform = "^1.0"': ('platform = "^1.0"\npermissions = ["events:subscribe:sales.*"]'),
        },
    )
    upload = platform.upload_for_review(app)
    assert upload["state"] == "pending_review"
    page = web.page
    login(page, web.url, "root")
    page.get_by_role("link", name="Reviews").click()
    item = page.locator(".review[data-app='com.test.style-probe'][data-version='1.0.1']")
    item.wait_for(timeout=TIMEOUT)
    assert "events:subscribe:sales.*" in item.inner_text()
    shots(page, "13-reviews")
    item.get_by_role("button", name="Reject").click()
    assert "Give a reason" in item.locator(".form-error").inner_text()
    item.get_by_role("button", name="Approve").click()
    page.locator(".toast", has_text="published").wait_for(timeout=TIMEOUT)
    version = platform.ok(
        platform.http.get("/api/v1/registry/apps/com.test.style-probe/versions/1.0.1")
    )
    assert version["state"] == "published"
