"""The web shell in Debian's Chromium: time to a mounted app, bytes for a second app.

A real ``apprt serve`` on loopback (process driver) with the Sales Dashboard and the
CRM Connector installed (both on Preact 10, which the page shares: the CRM's copy).
Time is measured in the page, from the in-shell navigation (the hash changes) to the
loader's ``apprt:mounted`` event (the module imported and ``mount(el, ctx)`` returned):

* **cold**: a fresh browser context (empty HTTP cache), the shell already loaded on
  another screen (no prefetch happened), the app never loaded;
* **warm cache**: a new page in the same context: the app's modules come from the
  HTTP cache (immutable URLs, no revalidation), and are evaluated again;
* **warm**: the same page, navigating away and back: modules already evaluated,
  only mount runs.

Bytes: in a fresh context, the asset bytes the browser transferred (``transferSize`` of
resource timing: headers and bodies) when opening the CRM Connector after the Sales
Dashboard (Preact already there), against opening it first.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench._harness import Figure, percentile

SALES = "com.example.sales-dashboard"
CRM = "com.example.crm-connector"
COLD_RUNS = 7
WARM_RUNS = 20

NAVIGATE = """async (hash) => {
  const done = new Promise((resolve, reject) => {
    const ok = (e) => { cleanup(); resolve(e.detail.ms); };
    const ko = (e) => { cleanup(); reject(new Error(`failed: ${e.detail.kind}`)); };
    const cleanup = () => {
      removeEventListener("apprt:mounted", ok);
      removeEventListener("apprt:failed", ko);
    };
    addEventListener("apprt:mounted", ok);
    addEventListener("apprt:failed", ko);
  });
  const started = performance.now();
  location.hash = hash;
  await done;
  return performance.now() - started;
}"""


ASSET_BYTES = """(since) => performance.getEntriesByType("resource").slice(since)
  .filter((e) => e.name.includes("/assets/sha256/"))
  .reduce((sum, e) => sum + e.transferSize, 0)"""


def run() -> list[Figure]:
    from tests.shell._platform import EXAMPLES, PASSWORD, ShellPlatform, browser

    with tempfile.TemporaryDirectory(prefix="apprt-bench-shell-") as tmp:
        platform = ShellPlatform(Path(tmp))
        try:
            for name in ["crm-connector", "sales-dashboard"]:
                platform.publish(EXAMPLES / name)
            platform.org("acme", "Acme Corp")
            platform.user("ada", org="acme", role="org_admin")
            platform.install("acme", SALES)
            app_hash = f"#/o/acme/apps/{SALES}"
            crm_hash = f"#/o/acme/apps/{CRM}"
            market = "#/o/acme/market"
            with browser() as chromium:

                def signed_in() -> Any:
                    """A fresh context (empty cache) with a session cookie, no page yet."""
                    context = chromium.new_context()
                    answer = context.request.post(
                        f"{platform.url}/api/v1/login", data={"name": "ada", "password": PASSWORD}
                    )
                    assert answer.ok, answer.text()
                    return context

                cold, warm_cache, warm = [], [], []
                for _ in range(COLD_RUNS):
                    context = signed_in()
                    page = context.new_page()
                    page.goto(f"{platform.url}/{market}")  # a screen that prefetches nothing
                    page.get_by_role("heading", name="Marketplace").wait_for()
                    cold.append(page.evaluate(NAVIGATE, app_hash))
                    page.evaluate(f"location.hash = '{market}'")
                    page.get_by_role("heading", name="Marketplace").wait_for()
                    for _ in range(WARM_RUNS // COLD_RUNS + 1):
                        warm.append(page.evaluate(NAVIGATE, app_hash))
                        page.evaluate(f"location.hash = '{market}'")
                        page.get_by_role("heading", name="Marketplace").wait_for()
                    second = context.new_page()
                    second.goto(f"{platform.url}/{market}")
                    second.get_by_role("heading", name="Marketplace").wait_for()
                    warm_cache.append(second.evaluate(NAVIGATE, app_hash))
                    context.close()

                def opened(first: str | None) -> int:
                    context = signed_in()
                    page = context.new_page()
                    page.goto(f"{platform.url}/{market}")
                    page.get_by_role("heading", name="Marketplace").wait_for()
                    if first is not None:
                        page.evaluate(NAVIGATE, first)
                    since = page.evaluate('performance.getEntriesByType("resource").length')
                    page.evaluate(NAVIGATE, crm_hash)
                    page.wait_for_load_state("networkidle")
                    size: int = page.evaluate(ASSET_BYTES, since)
                    context.close()
                    return size

                second_bytes = opened(app_hash)
                alone_bytes = opened(None)
        finally:
            platform.close()
    cold_p50 = statistics.median(cold)
    return [
        Figure(
            "shell_mount_cold_p50",
            "navigation to a mounted example app, cold browser cache (p50)",
            cold_p50,
            "ms",
            "<= 500 ms",
            cold_p50 <= 500,
        ),
        Figure(
            "shell_mount_warm_cache_p50",
            "navigation to a mounted example app, new page, warm HTTP cache (p50)",
            statistics.median(warm_cache),
            "ms",
            "<= 200 ms",
            statistics.median(warm_cache) <= 200,
        ),
        Figure(
            "shell_mount_warm_p50",
            "navigation to a mounted example app, modules already loaded (p50)",
            statistics.median(warm),
            "ms",
            "<= 50 ms",
            statistics.median(warm) <= 50,
        ),
        Figure(
            "shell_mount_warm_p99",
            "navigation to a mounted example app, modules already loaded (p99)",
            percentile(warm, 99),
            "ms",
            "",
        ),
        Figure(
            "shell_second_app_bytes",
            "asset bytes to open the CRM Connector after the Sales Dashboard (Preact shared)",
            float(second_bytes),
            "bytes",
            f"<= 60% of opening it first ({alone_bytes} bytes)",
            second_bytes <= 0.6 * alone_bytes,
        ),
        Figure(
            "shell_first_app_bytes",
            "asset bytes to open the CRM Connector first (its code and Preact)",
            float(alone_bytes),
            "bytes",
            "",
        ),
    ]
