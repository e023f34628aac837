"""Fixtures of the shell's tests: one real ``apprt serve`` for the module, the examples
and the test apps (``tests/shell/apps/``) published through the registry, three
organizations, and Debian's Chromium driven by Playwright.

=========  =================================================================================
org        installed (through the install engine's API)
=========  =================================================================================
``acme``   the three examples (Sales Dashboard brings the CRM Connector) and every test app
           but the strict one
``beta``   Sales Dashboard (with the CRM Connector) and ``strict-widget`` (a strict
           singleton on Preact 11: refused beside Preact 10)
``shop``   nothing: the marketplace test installs into it
=========  =================================================================================

``ada`` is an admin of the three organizations; ``root`` is a platform admin. Set
``SHELL_SCREENSHOTS=<dir>`` to keep the screenshots (``docs/screenshots`` holds the
committed ones).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.shell._platform import EXAMPLES, TEST_APPS, ShellPlatform, browser

SALES = "com.example.sales-dashboard"
CRM = "com.example.crm-connector"
NOTES = "com.example.team-notes"
ACME_TEST_APPS = [
    "style-probe",
    "broken-throw",
    "broken-missing",
    "iframe-probe",
    "leaky",
    "tamper-target",
    "bus-probe",
    "own-copy",
    "slow-mount",
]


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShellPlatform]:
    pytest.importorskip("playwright")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (scripts/ensure-system-deps)")
    p = ShellPlatform(tmp_path_factory.mktemp("shell"))
    try:
        for name in ["crm-connector", "team-notes", "sales-dashboard"]:
            p.publish(EXAMPLES / name)
        for name in [*ACME_TEST_APPS, "strict-widget"]:
            p.publish(TEST_APPS / name)
        for slug, title in [("acme", "Acme Corp"), ("beta", "Beta Labs"), ("shop", "Shop")]:
            p.org(slug, title)
        p.user("ada", org="acme", role="org_admin")
        for slug in ("beta", "shop"):
            p.ok(p.http.put(f"/api/v1/orgs/{slug}/members/ada", json={"role": "org_admin"}))
        p.user("root", admin=True)
        for app in [SALES, NOTES, *(f"com.test.{n}" for n in ACME_TEST_APPS)]:
            p.install("acme", app)
        p.install("beta", SALES)
        p.install("beta", "com.test.strict-widget")
        yield p
    finally:
        p.close()


@pytest.fixture(scope="session")
def chromium(platform: ShellPlatform) -> Iterator[Any]:
    with browser() as b:
        yield b


class Page:
    """A fresh browser context (empty cache, no cookies) and its page, with logs."""

    def __init__(self, chromium: Any, url: str) -> None:
        self.context = chromium.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.url = url
        self.console: list[str] = []
        self.errors: list[str] = []
        self.requests: list[Any] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r))

    def urls(self, fragment: str = "") -> list[str]:
        return [r.url for r in self.requests if fragment in r.url]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def web(chromium: Any, platform: ShellPlatform) -> Iterator[Page]:
    page = Page(chromium, platform.url)
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Save a screenshot (into $SHELL_SCREENSHOTS when set, else a temporary dir)."""
    target = os.environ.get("SHELL_SCREENSHOTS")
    root = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    root.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, full: bool = False) -> Path:
        path = root / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        return path

    return take


def variant(tmp_path: Path, source: Path, replace: dict[str, str]) -> Path:
    """A copy of a test app with textual replacements in its app.toml."""
    target = tmp_path / source.name
    shutil.copytree(source, target)
    toml = (target / "app.toml").read_text()
    for old, new in replace.items():
        toml = toml.replace(old, new)
    (target / "app.toml").write_text(toml)
    return target
