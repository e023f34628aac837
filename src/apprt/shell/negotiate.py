"""Shared-dependency negotiation between the frontends of one organization.

Each frontend declares the npm packages it is willing to share (``[frontend.shared]``
in ``app.toml``): a range, whether only one copy may run in the page (``singleton``),
whether running outside its range is refused (``strict``), and usually its own copy
(``bundle``). The platform hosts no npm packages of its own: the copies on offer are
the installed apps' bundles.

The rules, for each shared package ``D`` and the apps *in the same document* (every
``shadow`` app shares the shell's page; each ``iframe`` app has a document of its own):

1. **Shared version.** The highest bundled version satisfying every requester's range.
   When none does, the bundled version satisfying the most requesters (the higher one
   on a tie): the others are dealt with by rule 2.
2. **Out of range.** A requester the shared version does not satisfy gets

   * its own bundle, loaded beside the shared one (an import-map *scope*), unless
   * someone asked for a ``singleton``: then there is one copy in the page. A ``strict``
     requester is refused (an error card names the versions); another runs on the
     shared copy with a warning (Module Federation's non-strict singleton);
   * no bundle of its own, and none in range: refused.
3. An ``iframe`` app is alone in its document: it gets the highest bundled copy (of any
   app) inside its range, preferring the URL the page already uses so a cached copy
   serves it, and is refused when there is none.

Everything here is pure data in, data out::

    >>> from apprt.manifest.models import SharedDependency, Bundle
    >>> dep = lambda r, v: SharedDependency(version=r, bundle=Bundle(version=v, path="p.js"))
    >>> a = Requester("a", "shadow", {"preact": dep("^10.19.0", "10.24.3")}, {"preact": "/a/p.js"})
    >>> b = Requester("b", "shadow", {"preact": dep("^10.22.0", "10.29.8")}, {"preact": "/b/p.js"})
    >>> plan = negotiate([a, b])
    >>> plan.page_imports
    {'preact': '/b/p.js'}
    >>> [r.mode for r in plan.resolutions["a"]]
    ['shared']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from apprt.manifest.models import SharedDependency
from apprt.versioning import Version, parse_range, parse_version

Mode = Literal["shared", "own", "forced", "refused"]


@dataclass(frozen=True)
class Requester:
    """One app's frontend as the negotiation sees it.

    ``bundle_urls`` maps each shared package the app bundles to the URL of its copy.
    """

    app_id: str
    isolation: str  # "shadow" | "iframe"
    shared: Mapping[str, SharedDependency]
    bundle_urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Offer:
    """A bundled copy of a package: its version, the app shipping it, its URL."""

    version: Version
    app_id: str
    url: str


@dataclass(frozen=True)
class Resolution:
    """How one app gets one shared package.

    ``mode``: ``shared`` (the page's copy, in range), ``own`` (its bundle, scoped to
    it), ``forced`` (the page's singleton, outside its range: a warning), ``refused``
    (cannot load: ``reason`` says why).
    """

    package: str
    range: str
    mode: Mode
    version: str | None = None
    url: str | None = None
    provider: str | None = None  # the app whose bundle is used
    reason: str = ""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "package": self.package,
            "range": self.range,
            "mode": self.mode,
            "version": self.version,
            "url": self.url,
            "provider": self.provider,
            "reason": self.reason,
        }


@dataclass
class Plan:
    """The outcome: what the page's import map shares, and each app's resolutions."""

    #: bare specifier -> URL in the page's top-level ``imports``
    page_imports: dict[str, str] = field(default_factory=dict)
    #: app id -> its resolutions, one per shared package it declares
    resolutions: dict[str, list[Resolution]] = field(default_factory=dict)

    def refused(self, app_id: str) -> list[Resolution]:
        return [r for r in self.resolutions.get(app_id, []) if r.mode == "refused"]

    def own_copies(self, app_id: str) -> dict[str, str]:
        """Packages ``app_id`` loads from a copy that is not the page's (specifier -> URL)."""
        return {
            r.package: r.url
            for r in self.resolutions.get(app_id, [])
            if r.mode == "own" and r.url is not None
        }


def _offers(package: str, requesters: Iterable[Requester]) -> list[Offer]:
    """Every bundled copy of ``package``, highest version first (ties: by app id)."""
    offers = []
    for r in requesters:
        dep = r.shared.get(package)
        url = r.bundle_urls.get(package)
        if dep is not None and dep.bundle is not None and url is not None:
            offers.append(Offer(parse_version(dep.bundle.version), r.app_id, url))
    return sorted(offers, key=lambda o: (o.version, _neg(o.app_id)), reverse=True)


def _neg(text: str) -> tuple[int, ...]:
    # Sorting by (version, app id) descending would put "b" before "a"; invert the id so
    # equal versions pick the alphabetically first app: deterministic, and stable.
    return tuple(-ord(c) for c in text)


def _in_range(dep: SharedDependency, version: Version) -> bool:
    return parse_range(dep.version).contains(version)


def _choose(package: str, group: Sequence[Requester], offers: list[Offer]) -> Offer | None:
    """Rule 1: the highest offer satisfying everyone, else the one satisfying the most."""
    best: tuple[int, Offer] | None = None
    for offer in offers:  # highest first, so the first with the top count wins a tie
        satisfied = sum(1 for r in group if _in_range(r.shared[package], offer.version))
        if satisfied == len(group):
            return offer
        if best is None or satisfied > best[0]:
            best = (satisfied, offer)
    return best[1] if best is not None and best[0] > 0 else None


def _resolve_page(package: str, group: Sequence[Requester], plan: Plan) -> None:
    offers = _offers(package, group)
    chosen = _choose(package, group, offers)
    singleton_askers = sorted(r.app_id for r in group if r.shared[package].singleton)
    used_shared = False
    for r in group:
        dep = r.shared[package]
        own_url = r.bundle_urls.get(package)
        res: Resolution
        if chosen is not None and _in_range(dep, chosen.version):
            res = Resolution(
                package, dep.version, "shared", str(chosen.version), chosen.url, chosen.app_id
            )
            used_shared = True
        elif chosen is not None and singleton_askers:
            who = ", ".join(singleton_askers)
            if dep.singleton and dep.strict:
                res = Resolution(
                    package,
                    dep.version,
                    "refused",
                    reason=f"needs {package} {dep.version}, but the page runs a single copy "
                    f"({package} {chosen.version}, asked by {who}) and the app is strict",
                )
            else:
                res = Resolution(
                    package,
                    dep.version,
                    "forced",
                    str(chosen.version),
                    chosen.url,
                    chosen.app_id,
                    reason=f"runs on {package} {chosen.version}, outside its range "
                    f"{dep.version}: {who} asked for a single copy",
                )
                used_shared = True
        elif dep.bundle is not None and own_url is not None:
            res = Resolution(package, dep.version, "own", dep.bundle.version, own_url, r.app_id)
        else:
            offered = ", ".join(str(o.version) for o in offers) or "none"
            res = Resolution(
                package,
                dep.version,
                "refused",
                reason=f"no copy of {package} in {dep.version} is available (installed "
                f"copies: {offered}) and the app bundles none",
            )
        plan.resolutions.setdefault(r.app_id, []).append(res)
    if chosen is not None and used_shared:
        plan.page_imports[package] = chosen.url


def _resolve_frame(package: str, r: Requester, all_offers: list[Offer], plan: Plan) -> None:
    dep = r.shared[package]
    fitting = [o for o in all_offers if _in_range(dep, o.version)]
    page_url = plan.page_imports.get(package)
    preferred = next((o for o in fitting if o.url == page_url), None)
    offer = preferred or (fitting[0] if fitting else None)
    if offer is None:
        offered = ", ".join(str(o.version) for o in all_offers) or "none"
        res = Resolution(
            package,
            dep.version,
            "refused",
            reason=f"no copy of {package} in {dep.version} is available (installed copies: "
            f"{offered})",
        )
    else:
        mode: Mode = "shared" if offer.app_id != r.app_id else "own"
        res = Resolution(package, dep.version, mode, str(offer.version), offer.url, offer.app_id)
    plan.resolutions.setdefault(r.app_id, []).append(res)


def negotiate(requesters: Sequence[Requester]) -> Plan:
    """Resolve every shared package of every frontend (see the module's rules)."""
    plan = Plan()
    for r in requesters:
        plan.resolutions.setdefault(r.app_id, [])
    packages = sorted({name for r in requesters for name in r.shared})
    page = [r for r in requesters if r.isolation != "iframe"]
    for package in packages:
        group = [r for r in page if package in r.shared]
        if group:
            _resolve_page(package, group, plan)
    for package in packages:
        every_offer = _offers(package, requesters)
        for r in requesters:
            if r.isolation == "iframe" and package in r.shared:
                _resolve_frame(package, r, every_offer, plan)
    return plan
