"""An organization's frontends: the page's import map and one descriptor per app.

Every module URL is content-addressed: ``/assets/sha256/<package sha256>/<path inside
frontend/>``. The package digest names an immutable tree, so the URL never serves two
contents and is cached forever; two organizations running the same package share the
URLs (and the browser's cache). Every module URL listed carries its SRI string, made
from the package's own MANIFEST (``sha256-<base64>``), in the import map's
``integrity`` section.

The page's map (``GET /api/v1/orgs/{org}/importmap``) holds the ``shadow`` apps:

``imports``    each shared package the negotiation settled for the page
``scopes``     per app whose range the page's copy does not meet: its own copy, keyed
               by the app's asset prefix so only its modules (and its bundle's own
               imports) resolve to it
``integrity``  every ``.js``/``.mjs`` module of those apps

An ``iframe`` app's document gets a map of its own (:func:`frame_map`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from apprt.errors import Problem
from apprt.manifest.models import Isolation
from apprt.package import FileEntry
from apprt.shell.installed import InstalledApp
from apprt.shell.negotiate import Plan, Requester, Resolution, negotiate

ASSET_PREFIX = "/assets/sha256/"
FRONTEND_DIR = "frontend/"
MODULE_SUFFIXES = (".js", ".mjs")


def asset_base(digest: str) -> str:
    """The URL prefix of a package's frontend files (ends with ``/``)."""
    return f"{ASSET_PREFIX}{digest}/"


def sri_of(entry: FileEntry) -> str:
    """The SRI string of a package file, from its MANIFEST sha256."""
    return "sha256-" + base64.b64encode(bytes.fromhex(entry.sha256)).decode("ascii")


@dataclass
class Frontend:
    """One installed app as the shell shows and loads it."""

    app: InstalledApp
    files: dict[str, FileEntry] | None  # verified package files; None: not verifiable
    problems: list[Problem] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)

    @property
    def has_frontend(self) -> bool:
        return self.app.manifest.frontend is not None

    @property
    def isolation(self) -> str:
        fe = self.app.manifest.frontend
        return fe.isolation.value if fe is not None else ""

    @property
    def loadable(self) -> bool:
        return self.has_frontend and not self.problems

    def url(self, path: str) -> str:
        return asset_base(self.app.digest) + path

    @property
    def entry_url(self) -> str | None:
        fe = self.app.manifest.frontend
        return self.url(fe.entry) if fe is not None else None

    def modules(self) -> dict[str, str]:
        """URL -> SRI of every ES module in the app's frontend."""
        if self.files is None:
            return {}
        return {
            self.url(path.removeprefix(FRONTEND_DIR)): sri_of(entry)
            for path, entry in self.files.items()
            if path.startswith(FRONTEND_DIR) and path.endswith(MODULE_SUFFIXES)
        }

    def event_grants(self) -> list[str]:
        """The granted ``events:*`` permissions (what the shell's event bus checks)."""
        return sorted(g for g in self.app.grants if g.startswith("events:"))

    def describe(self, org: str) -> dict[str, Any]:
        m = self.app.manifest
        fe = m.frontend
        error = None
        if self.has_frontend and self.problems:
            error = {
                "title": f"{m.name} cannot be loaded",
                "problems": [p.as_dict() for p in self.problems],
            }
        return {
            "app_id": m.id,
            "name": m.name,
            "version": self.app.version,
            "description": m.description,
            "state": self.app.state,
            "digest": self.app.digest,
            "frontend": fe is not None,
            "isolation": self.isolation or None,
            "entry": self.entry_url if self.loadable else None,
            "integrity": self.modules().get(self.entry_url or "") if self.loadable else None,
            "frame": f"/shell/frame/{org}/{m.id}"
            if self.loadable and self.isolation == Isolation.iframe.value
            else None,
            "gateway": f"/apps/{org}/{m.id}/" if m.backend is not None else None,
            "health": m.backend.health if m.backend is not None else None,
            "grants": list(self.app.grants),
            "events": self.event_grants(),
            "shared": [r.as_dict() for r in self.resolutions],
            "warnings": [r.reason for r in self.resolutions if r.mode == "forced"],
            "error": error,
        }


def _check(app: InstalledApp) -> Frontend:
    fe = app.manifest.frontend
    if fe is None:
        return Frontend(app, None)
    if app.package is None:
        return Frontend(
            app,
            None,
            [
                Problem(
                    "the app's package is not in the platform's blob store, so its files "
                    "cannot be verified",
                    location=app.app_id,
                    hint="reinstall the app from the registry",
                )
            ],
        )
    files = app.package.files
    problems = []
    if FRONTEND_DIR + fe.entry not in files:
        problems.append(
            Problem(
                f"the entry module frontend/{fe.entry} is not in the package",
                file="app.toml",
                location="frontend.entry",
                hint="publish a version whose entry exists",
            )
        )
    return Frontend(app, files, problems)


def _requester(front: Frontend) -> Requester:
    fe = front.app.manifest.frontend
    assert fe is not None
    urls = {}
    for name, dep in fe.shared.items():
        if dep.bundle is not None and front.files is not None:
            path = FRONTEND_DIR + dep.bundle.path
            if path in front.files:
                urls[name] = front.url(dep.bundle.path)
    return Requester(front.app.app_id, fe.isolation.value, fe.shared, urls)


@dataclass
class OrgFrontends:
    """Everything the shell needs for one organization."""

    org: str
    frontends: list[Frontend]
    plan: Plan

    def by_id(self, app_id: str) -> Frontend | None:
        return next((f for f in self.frontends if f.app.app_id == app_id), None)

    def _integrity_of(self, urls: set[str]) -> dict[str, str]:
        known: dict[str, str] = {}
        for f in self.frontends:
            known.update(f.modules())
        return {u: known[u] for u in sorted(urls) if u in known}

    def page_map(self) -> dict[str, Any]:
        """The import map of the shell's page (the ``shadow`` apps)."""
        page = [f for f in self.frontends if f.loadable and f.isolation == "shadow"]
        scopes: dict[str, dict[str, str]] = {}
        urls: set[str] = set(self.plan.page_imports.values())
        for f in page:
            urls.update(f.modules())
            own = self.plan.own_copies(f.app.app_id)
            if own:
                scopes[asset_base(f.app.digest)] = dict(sorted(own.items()))
        return {
            "imports": dict(sorted(self.plan.page_imports.items())),
            "scopes": scopes,
            "integrity": self._integrity_of(urls),
        }

    def frame_map(self, app_id: str) -> dict[str, Any] | None:
        """The import map of an ``iframe`` app's own document."""
        f = self.by_id(app_id)
        if f is None or not f.loadable or f.isolation != "iframe":
            return None
        imports = {
            r.package: r.url
            for r in self.plan.resolutions.get(app_id, [])
            if r.url is not None and r.mode != "refused"
        }
        urls = set(f.modules()) | set(imports.values())
        return {
            "imports": dict(sorted(imports.items())),
            "scopes": {},
            "integrity": self._integrity_of(urls),
        }

    def descriptors(self) -> list[dict[str, Any]]:
        """One per app; ``modules`` (URL -> SRI) lists what the app loads, for
        prefetching and for telling a missing file from an altered one."""
        out = []
        for f in self.frontends:
            d = f.describe(self.org)
            shared = {r.url for r in f.resolutions if r.url is not None and r.mode != "refused"}
            d["modules"] = {**f.modules(), **self._integrity_of(shared)} if f.loadable else {}
            out.append(d)
        return out


def build(org: str, apps: list[InstalledApp]) -> OrgFrontends:
    """Check each app's package, negotiate shared packages, attach the outcome."""
    frontends = [_check(app) for app in sorted(apps, key=lambda a: a.app_id)]
    candidates = [f for f in frontends if f.loadable]
    plan = negotiate([_requester(f) for f in candidates])
    for f in candidates:
        f.resolutions = plan.resolutions.get(f.app.app_id, [])
        for r in plan.refused(f.app.app_id):
            f.problems.append(
                Problem(
                    r.reason,
                    file="app.toml",
                    location=f"frontend.shared.{r.package}",
                    hint="install a version of the app whose range the others can meet, "
                    "or ask its publisher to bundle a copy (or drop strict)",
                )
            )
    return OrgFrontends(org, frontends, plan)
