"""Reading the registry: apps, versions, compatibility, dependency graphs, the resolver index.

Only installable versions (published, deprecated, yanked) are visible to the
marketplace and the resolver; yanked ones are flagged so the resolver takes them
only when a range pins them exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from apprt import PLATFORM_API_VERSION
from apprt.registry.errors import NotFoundError, RegistryError
from apprt.registry.models import INSTALLABLE_STATES, AppVersion, RegistryApp, VersionState
from apprt.resolve import Candidate, InstallPlan, resolve
from apprt.versioning import Version, VersionError, parse_range, parse_version


def semver(version: AppVersion) -> Version:
    return parse_version(version.version)


def newest(versions: Iterable[AppVersion]) -> AppVersion | None:
    listed = list(versions)
    return max(listed, key=semver) if listed else None


def find_app(session: Session, app_id: str) -> RegistryApp | None:
    return session.scalars(select(RegistryApp).where(RegistryApp.app_id == app_id)).first()


def get_app(session: Session, app_id: str) -> RegistryApp:
    app = find_app(session, app_id)
    if app is None:
        raise NotFoundError.one(
            f"no app {app_id!r} in the registry",
            location="app_id",
            hint="check the id (search with `apprt registry search`)",
        )
    return app


def versions_of(
    session: Session, app: RegistryApp, states: Sequence[VersionState] | None = None
) -> list[AppVersion]:
    """The app's versions, newest first (optionally only those in ``states``)."""
    query = select(AppVersion).where(AppVersion.app_pk == app.id)
    if states is not None:
        query = query.where(AppVersion.state.in_(states))
    return sorted(session.scalars(query).all(), key=semver, reverse=True)


def find_version(session: Session, app: RegistryApp, version: str) -> AppVersion | None:
    return session.scalars(
        select(AppVersion).where(AppVersion.app_pk == app.id, AppVersion.version == version)
    ).first()


def get_version(
    session: Session,
    app_id: str,
    version: str,
    *,
    states: Sequence[VersionState] | None = None,
) -> AppVersion:
    app = get_app(session, app_id)
    row = find_version(session, app, version)
    if row is None or (states is not None and row.state not in states):
        raise NotFoundError.one(
            f"{app_id} has no version {version!r}",
            location="version",
            hint=f"list its versions with `apprt registry versions {app_id}`",
        )
    return row


def candidate(version: AppVersion) -> Candidate:
    return Candidate(
        app_id=version.app.app_id,
        version=version.version,
        dependencies=dict(version.dependencies),
        platform=version.platform,
        yanked=version.state == VersionState.YANKED,
    )


class RegistryIndex:
    """The resolver's :class:`apprt.resolve.Index` over the registry database.

    Published and deprecated versions are candidates, yanked ones too (flagged);
    pending, rejected and unpublished ones are not. Lookups are cached for the life
    of the index (one resolution), so each app is read once.
    """

    def __init__(self, session: Session, *, extra: Iterable[Candidate] = ()) -> None:
        self._session = session
        self._cache: dict[str, tuple[Candidate, ...]] = {}
        self._extra: dict[str, list[Candidate]] = {}
        for c in extra:
            self._extra.setdefault(c.app_id, []).append(c)

    def candidates(self, app_id: str) -> Sequence[Candidate]:
        cached = self._cache.get(app_id)
        if cached is not None:
            return cached
        rows = self._session.scalars(
            select(AppVersion)
            .join(RegistryApp)
            .where(RegistryApp.app_id == app_id, AppVersion.state.in_(INSTALLABLE_STATES))
            .options(selectinload(AppVersion.app))
        ).all()
        found = [candidate(r) for r in rows]
        extra = self._extra.get(app_id, [])
        versions = {c.version for c in extra}
        result = tuple(extra + [c for c in found if c.version not in versions])
        self._cache[app_id] = result
        return result


def _check_platform(platform_version: str) -> Version:
    try:
        return parse_version(platform_version)
    except VersionError as exc:
        raise RegistryError.one(
            str(exc), location="platform", hint="give a platform API version such as 1.0.0"
        ) from None


def newest_compatible(
    session: Session, app_id: str, platform_version: str = PLATFORM_API_VERSION
) -> AppVersion:
    """The newest published or deprecated (not yanked) version whose platform range
    holds ``platform_version``."""
    platform = _check_platform(platform_version)
    app = get_app(session, app_id)
    for row in versions_of(session, app, (VersionState.PUBLISHED, VersionState.DEPRECATED)):
        if parse_range(row.platform).contains(platform):
            return row
    raise NotFoundError.one(
        f"no installable version of {app_id} runs on platform API {platform_version}",
        location="platform",
        hint=f"list its versions and their platform ranges: `apprt registry versions {app_id}`",
    )


@dataclass
class DependencyGraph:
    """An app version and everything it needs, as nodes and edges."""

    root: str
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, str]] = field(default_factory=list)
    install_order: list[str] = field(default_factory=list)


def dependency_graph(
    session: Session, app_id: str, version: str, platform_version: str = PLATFORM_API_VERSION
) -> DependencyGraph:
    """Resolve ``app_id@version`` against the registry and describe the result.

    Raises :class:`apprt.resolve.ResolutionError` (409) naming the clashing chain of
    requirements when the version cannot be installed.
    """
    _check_platform(platform_version)
    row = get_version(session, app_id, version, states=INSTALLABLE_STATES)
    plan: InstallPlan = resolve(
        {app_id: f"={row.version}"},
        RegistryIndex(session),
        platform_version=platform_version,
    )
    graph = DependencyGraph(root=f"{app_id}@{row.version}")
    for cand in plan.steps:
        graph.nodes.append(
            {
                "app_id": cand.app_id,
                "version": cand.version,
                "yanked": cand.yanked,
                "platform": cand.platform,
            }
        )
        graph.install_order.append(f"{cand.app_id}@{cand.version}")
        for dep, rng in sorted(cand.dependencies.items()):
            target = plan.resolved.get(dep)
            graph.edges.append(
                {
                    "from": f"{cand.app_id}@{cand.version}",
                    "to": f"{dep}@{target.version}" if target else dep,
                    "range": rng,
                }
            )
    return graph


def dependents_of(session: Session, version: AppVersion) -> list[AppVersion]:
    """Installable versions of other apps whose dependency range holds ``version``."""
    app_id = version.app.app_id
    target = semver(version)
    rows = session.scalars(
        select(AppVersion)
        .where(AppVersion.state.in_(INSTALLABLE_STATES), AppVersion.id != version.id)
        .options(selectinload(AppVersion.app))
    ).all()
    found = []
    for row in rows:
        rng = row.dependencies.get(app_id)
        if rng is not None and parse_range(rng).contains(target):
            found.append(row)
    return found


@dataclass(frozen=True)
class VersionNotice:
    """What an organization running ``app_id@version`` should be told."""

    app_id: str
    version: str
    state: VersionState
    message: str
    replacement: str = ""


def notices(session: Session, installed: Mapping[str, str]) -> list[VersionNotice]:
    """Deprecations, yanks and unpublications among ``installed`` (app id → version).

    The install engine calls this for an organization's apps: a yanked version keeps
    running, but its admins are told why and what to move to.
    """
    found: list[VersionNotice] = []
    for app_id, version in sorted(installed.items()):
        app = find_app(session, app_id)
        row = find_version(session, app, version) if app is not None else None
        if row is None:
            continue
        if row.state == VersionState.YANKED:
            found.append(VersionNotice(app_id, version, row.state, row.yank_reason))
        elif row.state == VersionState.DEPRECATED:
            found.append(
                VersionNotice(app_id, version, row.state, row.deprecation_message, row.replacement)
            )
        elif row.state == VersionState.UNPUBLISHED:
            found.append(VersionNotice(app_id, version, row.state, "removed from the registry"))
    return found
