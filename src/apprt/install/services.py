"""What the install engine decides, as plain functions over a session.

The same functions check a request before its job is created (so bad input is a 4xx
at once and nothing is touched) and run again inside the job's steps (the
authoritative check: the registry or the organization may have changed meanwhile):

* :func:`pick_versions`: package resolution (the app exists, versions match the range);
* :func:`choose_compatible`: compatibility (platform API range, the organization's
  installed apps that depend on it) and the notices to show (deprecations, yanks);
* :func:`plan_dependencies`: the install plan with the resolver (dependencies first);
* :func:`check_quota`: apps, memory and storage against the organization's quotas;
* :func:`consent_items` / :func:`grants_for`: the permissions to consent to, and the
  grants an admin's consent gives (all declared permissions, or a refusal);
* :func:`validate_config`: the organization's settings against the app's config schema,
  defaults applied;
* :func:`updatable`, :func:`newer_versions`, :func:`choose_update`,
  :func:`update_grants` and :func:`carry_config`: the same decisions for an update of
  an installed app (see :mod:`apprt.install.update`).

Other domains read installations through :func:`installations_of`,
:func:`active_installation` and the in-memory :class:`InstallationIndex` on
``app.state.installations`` (what the gateway and the shell need per request,
without a database query).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from apprt import PLATFORM_API_VERSION
from apprt.accounts.models import Organization
from apprt.errors import Problem
from apprt.install.errors import (
    AlreadyInstalledError,
    ConsentRequiredError,
    DependentsError,
    IncompatibleError,
    InstallError,
    InvalidConfigError,
    NotInstalledError,
    QuotaExceededError,
    UnknownAppError,
    UnsatisfiableRangeError,
    UpToDateError,
)
from apprt.install.models import Installation, InstallState
from apprt.manifest import Manifest, config_defaults, parse_manifest
from apprt.registry.models import INSTALLABLE_STATES, AppVersion, RegistryApp, VersionState
from apprt.registry.services import queries
from apprt.resolve import resolve
from apprt.versioning import VersionError, parse_range, parse_version


def app_url(org: str, app_id: str) -> str:
    return f"/apps/{org}/{app_id}/"


# -- what is planned -------------------------------------------------------------------


@dataclass
class PlannedApp:
    """One app version the job installs."""

    app_id: str
    version: str
    sha256: str
    size: int
    manifest: Manifest
    requested: bool
    manifest_text: str = ""

    @property
    def has_backend(self) -> bool:
        return self.manifest.backend is not None

    @property
    def tenancy(self) -> str:
        return self.manifest.tenancy.value

    @property
    def memory_mb(self) -> int:
        return self.manifest.resources.memory_mb if self.has_backend else 0

    @property
    def storage_mb(self) -> int:
        return self.manifest.resources.storage_mb if self.has_backend else 0

    @property
    def permissions(self) -> list[str]:
        return [p.permission for p in self.manifest.permissions]

    def as_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "requested": self.requested,
        }


def _manifest_of(row: AppVersion) -> Manifest:
    return parse_manifest(row.manifest_text)


def planned_from(session: Session, items: Iterable[Mapping[str, Any]]) -> list[PlannedApp]:
    """Rebuild a plan (a step's JSON output) with the manifests from the registry."""
    plan = []
    for item in items:
        row = queries.get_version(session, item["app_id"], item["version"])
        plan.append(
            PlannedApp(
                app_id=item["app_id"],
                version=item["version"],
                sha256=item["sha256"],
                size=int(item["size"]),
                manifest=_manifest_of(row),
                requested=bool(item["requested"]),
                manifest_text=row.manifest_text,
            )
        )
    return plan


# -- the organization's installations -------------------------------------------------


def installations_of(session: Session, org: Organization) -> list[Installation]:
    return list(
        session.scalars(
            select(Installation).where(Installation.org_id == org.id).order_by(Installation.app_id)
        )
    )


def find_installation(session: Session, org: Organization, app_id: str) -> Installation | None:
    return session.scalars(
        select(Installation).where(Installation.org_id == org.id, Installation.app_id == app_id)
    ).one_or_none()


def get_installation(session: Session, org: Organization, app_id: str) -> Installation:
    row = find_installation(session, org, app_id)
    if row is None:
        raise NotInstalledError.one(
            f"{app_id} is not installed in {org.slug}",
            location="app",
            hint=f"list the organization's apps with `apprt apps list --org {org.slug}`",
        )
    return row


def installed_versions(session: Session, org: Organization) -> dict[str, str]:
    """App id -> version of every installation row (any state) of ``org``."""
    return {row.app_id: row.version for row in installations_of(session, org)}


#: The update job's kind (its rows stay active, marked with the job).
UPDATE = "update"


def active_installation(session: Session, org_slug: str, app_id: str) -> Installation | None:
    """The active installation of ``app_id`` in the organization ``org_slug``, or None."""
    return session.scalars(
        select(Installation)
        .join(Organization, Organization.id == Installation.org_id)
        .where(
            Organization.slug == org_slug,
            Installation.app_id == app_id,
            Installation.state == InstallState.ACTIVE,
        )
    ).one_or_none()


def settle(session: Session, row: Installation) -> Installation:
    """Mark ``failed`` a row a job left half-changed: ``installing``/``uninstalling``
    after its job ended, or ``active`` but marked by an update job that failed (its
    compensation could not finish, so the instance may run either version). An operator
    should look at the job's events; uninstalling the app cleans up what is left."""
    from apprt.jobs.models import Job, JobState

    job = session.get(Job, row.job_id) if row.job_id is not None else None
    if row.state is InstallState.ACTIVE:
        if job is not None and job.kind == UPDATE and job.state is JobState.FAILED:
            row.state = InstallState.FAILED
        return row
    if row.state not in (InstallState.INSTALLING, InstallState.UNINSTALLING):
        return row
    if job is None or job.state in (JobState.FAILED, JobState.ROLLED_BACK):
        row.state = InstallState.FAILED
    return row


def _failed(org: Organization, row: Installation, *, title: str = "") -> AlreadyInstalledError:
    """The refusal to change an installation a job left failed (it could not undo its work)."""
    return AlreadyInstalledError.one(
        f"{row.app_id} {row.version} is failed in {org.slug} (job {row.job_id} could not undo "
        "all its work)",
        location="app",
        hint=f"see the job's events (GET /api/v1/jobs/{row.job_id}); uninstall the app to "
        "clean up, then install it again",
        title=title,
    )


def check_not_installed(session: Session, org: Organization, app_id: str) -> None:
    row = find_installation(session, org, app_id)
    if row is None:
        return
    settle(session, row)
    if row.state is InstallState.FAILED:
        raise _failed(org, row)
    if row.state is InstallState.ACTIVE:
        raise AlreadyInstalledError.one(
            f"{app_id} {row.version} is already installed in {org.slug}",
            location="app",
            hint=f"to change its version, update it (`apprt update {app_id} --org {org.slug}`); "
            "to start afresh, uninstall it first",
        )
    raise AlreadyInstalledError.one(
        f"{app_id} is {row.state.value} in {org.slug} (job {row.job_id})",
        location="app",
        hint=f"wait for that job to finish (GET /api/v1/jobs/{row.job_id})",
    )


def dependents(session: Session, org: Organization, app_id: str) -> list[Installation]:
    """Other installations of ``org`` whose version depends on ``app_id``."""
    return [
        row
        for row in installations_of(session, org)
        if row.app_id != app_id and app_id in (row.dependencies or {})
    ]


def check_no_dependents(session: Session, org: Organization, app_id: str) -> None:
    needing = dependents(session, org, app_id)
    if needing:
        names = ", ".join(f"{r.app_id} {r.version}" for r in needing)
        raise DependentsError.one(
            f"{names} depend{'s' if len(needing) == 1 else ''} on {app_id} in {org.slug}",
            location="app",
            hint="uninstall " + (" and ".join(r.app_id for r in needing)) + " first",
        )


def changed_by_another_job(row: Installation, session: Session, job_id: int | None) -> bool:
    """Whether an unfinished job other than ``job_id`` is changing ``row`` (an update
    keeps its row active and marks it with its job id)."""
    from apprt.jobs.models import Job, JobState

    if row.job_id is None or row.job_id == job_id:
        return False
    job = session.get(Job, row.job_id)
    unfinished = (JobState.PENDING, JobState.RUNNING, JobState.ROLLING_BACK)
    return job is not None and job.state in unfinished


def check_uninstallable(
    session: Session, org: Organization, row: Installation, *, job_id: int | None = None
) -> None:
    """Refuse to uninstall an app another job is changing, or one others depend on."""
    settle(session, row)
    busy = (
        row.state is InstallState.INSTALLING
        or (row.state is InstallState.UNINSTALLING and row.job_id != job_id)
        or changed_by_another_job(row, session, job_id)
    )
    if busy:
        raise AlreadyInstalledError.one(
            f"{row.app_id} is {row.state.value} in {org.slug} (job {row.job_id})",
            location="app",
            hint=f"wait for that job to finish (GET /api/v1/jobs/{row.job_id})",
            title="busy",
        )
    check_no_dependents(session, org, row.app_id)


# -- 1. package resolution -----------------------------------------------------------


def _pinned(range_text: str) -> str | None:
    text = range_text.strip().removeprefix("=").strip()
    try:
        parse_version(text)
    except VersionError:
        return None
    return text


def pick_versions(session: Session, app_id: str, range_text: str) -> list[AppVersion]:
    """Installable versions of ``app_id`` inside ``range_text``, newest first.

    Yanked versions count only when the range pins them exactly. Raises
    :class:`UnknownAppError` (unknown app or pinned version) or
    :class:`UnsatisfiableRangeError`.
    """
    try:
        rng = parse_range(range_text)
    except VersionError as exc:
        raise InstallError.one(str(exc), location="range", title="invalid range") from None
    app = session.scalars(select(RegistryApp).where(RegistryApp.app_id == app_id)).first()
    versions = queries.versions_of(session, app, INSTALLABLE_STATES) if app is not None else []
    if app is None or not versions:
        raise UnknownAppError.one(
            f"no app {app_id!r} in the registry",
            location="app",
            hint="check the id; search with `apprt registry search WORDS`",
        )
    available = ", ".join(v.version for v in versions[:10])
    pinned = _pinned(range_text)
    if pinned is not None and pinned not in {v.version for v in versions}:
        raise UnknownAppError.one(
            f"{app_id} has no version {pinned}",
            location="range",
            hint=f"installable versions: {available}",
        )
    matching = [
        v
        for v in versions
        if rng.contains(v.version) and (v.state is not VersionState.YANKED or pinned == v.version)
    ]
    if not matching:
        yanked = [v.version for v in versions if v.state is VersionState.YANKED]
        in_range = [v for v in yanked if rng.contains(v)]
        note = f" ({', '.join(in_range)} matches but was yanked)" if in_range else ""
        usable = [v.version for v in versions if v.state is not VersionState.YANKED]
        hint = (
            f"installable versions: {', '.join(usable[:10])}; ask for one of them, e.g. "
            f"{app_id}@^{usable[0]}"
            if usable
            else "every version is yanked"
        )
        if yanked:
            hint += f"; a yanked version installs only pinned exactly, e.g. {app_id}@={yanked[0]}"
        raise UnsatisfiableRangeError.one(
            f"no installable version of {app_id} matches {range_text!r}{note}",
            location="range",
            hint=hint,
        )
    return matching


# -- 2. compatibility ----------------------------------------------------------------


@dataclass
class Compatible:
    version: AppVersion
    notices: list[dict[str, str]] = field(default_factory=list)


def _notice(
    app_id: str, version: str, kind: str, message: str, replacement: str = ""
) -> dict[str, str]:
    return {
        "app_id": app_id,
        "version": version,
        "kind": kind,
        "message": message,
        "replacement": replacement,
    }


def choose_compatible(
    session: Session,
    org: Organization,
    app_id: str,
    matching: list[AppVersion],
    platform_version: str = PLATFORM_API_VERSION,
) -> Compatible:
    """The newest of ``matching`` that runs on this platform and keeps the organization's
    installed apps satisfied; with the notices the admin should see."""
    platform = parse_version(platform_version)
    on_platform = [v for v in matching if parse_range(v.platform).contains(platform)]
    if not on_platform:
        needs = ", ".join(f"{v.version} needs {v.platform}" for v in matching[:5])
        hint = "ask the publisher for a version for this platform"
        try:
            fallback = queries.newest_compatible(session, app_id, platform_version)
            hint = f"{app_id} {fallback.version} runs here: install {app_id}@{fallback.version}"
        except Exception:  # noqa: S110 - only for the hint
            pass
        raise IncompatibleError.one(
            f"no matching version of {app_id} runs on platform API {platform_version} ({needs})",
            location="platform",
            hint=hint,
        )
    # Installed apps that depend on this app keep their ranges.
    needing = [
        (row.app_id, row.version, row.dependencies[app_id])
        for row in installations_of(session, org)
        if app_id in (row.dependencies or {})
    ]
    fitting = [
        v for v in on_platform if all(parse_range(r).contains(v.version) for *_, r in needing)
    ]
    if not fitting:
        clash = "; ".join(f"{a} {v} needs {app_id} {r}" for a, v, r in needing)
        raise IncompatibleError.one(
            f"no matching version of {app_id} satisfies the installed apps of {org.slug}: {clash}",
            location="range",
            hint="ask for a version those apps accept",
        )
    chosen = fitting[0]
    notices = []
    if chosen.state is VersionState.DEPRECATED:
        notices.append(
            _notice(
                app_id,
                chosen.version,
                "deprecated",
                chosen.deprecation_message,
                chosen.replacement,
            )
        )
    elif chosen.state is VersionState.YANKED:
        notices.append(_notice(app_id, chosen.version, "yanked", chosen.yank_reason))
    for n in queries.notices(session, installed_versions(session, org)):
        notices.append(_notice(n.app_id, n.version, n.state.value, n.message, n.replacement))
    return Compatible(chosen, notices)


# -- 3. dependencies -----------------------------------------------------------------


def plan_dependencies(
    session: Session,
    org: Organization,
    app_id: str,
    version: str,
    platform_version: str = PLATFORM_API_VERSION,
) -> list[PlannedApp]:
    """Everything to install for ``app_id@version``, dependencies first.

    Raises :class:`apprt.resolve.ResolutionError` (409, the resolver's explanation)
    when no set of versions fits; an upgrade of an installed app is refused (that is
    an update, not an install).
    """
    installed = installed_versions(session, org)
    plan = resolve(
        {app_id: f"={version}"},
        queries.RegistryIndex(session),
        installed=installed,
        platform_version=platform_version,
    )
    if plan.upgrades:
        moves = ", ".join(
            f"{a} {old} -> {plan.resolved[a].version}" for a, old in sorted(plan.upgrades.items())
        )
        raise IncompatibleError.one(
            f"installing {app_id} {version} in {org.slug} needs installed apps upgraded: {moves}",
            location="dependencies",
            hint="update those apps first, then install again",
        )
    planned = []
    for candidate in plan.steps:
        row = queries.get_version(
            session, candidate.app_id, candidate.version, states=INSTALLABLE_STATES
        )
        planned.append(
            PlannedApp(
                app_id=candidate.app_id,
                version=candidate.version,
                sha256=row.sha256,
                size=row.size,
                manifest=_manifest_of(row),
                requested=candidate.app_id == app_id,
                manifest_text=row.manifest_text,
            )
        )
    return planned


# -- 4. quotas -----------------------------------------------------------------------


def lock_org(session: Session, org_id: int) -> None:
    """Take the organization's row lock (SQLite: the write lock) for this transaction.

    Concurrent allocations are then checked one after the other, and, being the
    transaction's first statement, it spares SQLite's WAL mode the failing upgrade of
    a read snapshot to a writer ("database is locked" despite the busy timeout)."""
    session.execute(
        update(Organization)
        .where(Organization.id == org_id)
        .values(max_apps=Organization.max_apps)
        .execution_options(synchronize_session=False)
    )


def check_quota(
    session: Session,
    org: Organization,
    planned: list[PlannedApp],
    *,
    replacing: Installation | None = None,
) -> None:
    """Refuse when the plan does not fit in the organization's quotas (every one named).

    ``replacing``: the installation the plan takes the place of (an update)."""
    rows = [r for r in installations_of(session, org) if replacing is None or r.id != replacing.id]
    apps = len(rows) + len(planned)
    memory = sum(r.memory_mb for r in rows) + sum(p.memory_mb for p in planned)
    storage = sum(r.storage_mb for r in rows) + sum(p.storage_mb for p in planned)
    problems = []
    what = ", ".join(f"{p.app_id} {p.version}" for p in planned)
    for name, used, limit, unit in (
        ("apps", apps, org.max_apps, ""),
        ("memory", memory, org.max_memory_mb, " MB"),
        ("storage", storage, org.max_storage_mb, " MB"),
    ):
        if used > limit:
            problems.append(
                Problem(
                    f"{'updating to' if replacing else 'installing'} {what} would bring "
                    f"{org.slug} to {used}{unit} of {name}; "
                    f"its quota is {limit}{unit}",
                    location=f"quota.{name}",
                    hint="uninstall apps the organization no longer uses, or ask a platform "
                    f"admin to raise its {name} quota",
                )
            )
    if problems:
        raise QuotaExceededError(problems, title="quota exceeded")


# -- 8. configuration and consent ----------------------------------------------------


def validate_config(manifest: Manifest, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` merged over the schema's defaults, validated; every problem listed."""
    schema = manifest.config
    properties = schema.get("properties", {})
    value = {**config_defaults(schema), **dict(given)}
    problems: list[Problem] = []
    if properties and schema.get("additionalProperties") is not True:
        for key in sorted(set(given) - set(properties)):
            problems.append(
                Problem(
                    f"{manifest.id} has no setting {key!r}",
                    location=f"config.{key}",
                    hint=f"its settings are: {', '.join(sorted(properties))}",
                )
            )
    for error in sorted(
        Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)
    ):
        path = ".".join(str(p) for p in error.absolute_path)
        prop = properties.get(path, {}) if path else {}
        hint = f"{path}: {json.dumps(prop)}" if prop else "see the app's config schema"
        problems.append(
            Problem(error.message, location=f"config.{path}" if path else "config", hint=hint)
        )
    if problems:
        raise InvalidConfigError(problems, title=f"invalid settings for {manifest.id}")
    return value


def consent_items(planned: list[PlannedApp]) -> list[dict[str, Any]]:
    """What an org admin is asked to consent to, per app."""
    items = []
    for p in planned:
        items.append(
            {
                "app_id": p.app_id,
                "version": p.version,
                "requested": p.requested,
                "permissions": [
                    {
                        "permission": r.permission,
                        "reason": r.reason,
                        "sensitive": r.parsed.sensitive,
                    }
                    for r in p.manifest.permissions
                ],
            }
        )
    return items


def grants_for(
    planned: list[PlannedApp],
    *,
    accept_all: bool,
    consent: Mapping[str, Iterable[str]] | None,
) -> dict[str, list[str]]:
    """The grants of each app: every permission it declares, if consented.

    ``accept_all`` consents to everything shown; ``consent`` maps app ids to the
    permissions consented for each (``"*"`` as a key applies to every app). A missing
    permission refuses the whole install.
    """
    grants: dict[str, list[str]] = {}
    problems = []
    given = {k: set(v) for k, v in (consent or {}).items()}
    for p in planned:
        ok = given.get(p.app_id, set()) | given.get("*", set())
        missing = [perm for perm in p.permissions if not accept_all and perm not in ok]
        for perm in missing:
            request = next(r for r in p.manifest.permissions if r.permission == perm)
            reason = f" ({request.reason})" if request.reason else ""
            problems.append(
                Problem(
                    f"{p.app_id} {p.version} asks for {perm!r}{reason}, which was not consented to",
                    location=f"consent.{p.app_id}",
                    hint="review the permissions (GET .../installations/{app}/consent or "
                    "`apprt install` without --accept-permissions), then consent with "
                    "--accept-permissions",
                )
            )
        grants[p.app_id] = list(p.permissions)
    if problems:
        raise ConsentRequiredError(problems, title="consent required")
    return grants


# -- updates -------------------------------------------------------------------------


def updatable(
    session: Session, org: Organization, app_id: str, *, job_id: int | None = None
) -> Installation:
    """The active installation of ``app_id`` that an update (``job_id``) may change.

    Refused: not installed (404), failed or being installed/uninstalled, or changed by
    another unfinished job (409).
    """
    row = get_installation(session, org, app_id)
    settle(session, row)
    if row.state is InstallState.FAILED:
        raise _failed(org, row, title="not updatable")
    if row.state is not InstallState.ACTIVE or changed_by_another_job(row, session, job_id):
        raise AlreadyInstalledError.one(
            f"{app_id} is being changed in {org.slug} (job {row.job_id}, {row.state.value})",
            location="app",
            hint=f"wait for that job to finish (GET /api/v1/jobs/{row.job_id}), then update",
            title="busy",
        )
    return row


def newer_versions(
    session: Session, org: Organization, row: Installation, range_text: str
) -> list[AppVersion]:
    """The installable versions of the installed app inside ``range_text`` that are newer
    than the installed one, newest first; :class:`UpToDateError` (409) when none is."""
    matching = pick_versions(session, row.app_id, range_text)
    current = parse_version(row.version)
    newer = [v for v in matching if parse_version(v.version) > current]
    if not newer:
        raise UpToDateError.one(
            f"{row.app_id} {row.version} in {org.slug} is already the newest version matching "
            f"{range_text!r} (newest there: {matching[0].version})",
            location="range",
            hint="nothing to update; to move to another major version ask for its range, "
            f"e.g. {row.app_id}@>{row.version}",
        )
    return newer


def dependency_problems(session: Session, org: Organization, manifest: Manifest) -> list[Problem]:
    """What the organization's installed apps lack for ``manifest``'s dependencies (an
    update does not install or update other apps)."""
    problems = []
    for dep, range_text in sorted(manifest.dependencies.items()):
        row = find_installation(session, org, dep)
        if row is None or row.state is not InstallState.ACTIVE:
            problems.append(
                Problem(
                    f"{manifest.id} {manifest.version} depends on {dep} {range_text}, which is "
                    f"not installed in {org.slug}",
                    location=f"dependencies.{dep}",
                    hint=f"install {dep}@{range_text} first, then update",
                )
            )
        elif not parse_range(range_text).contains(row.version):
            problems.append(
                Problem(
                    f"{manifest.id} {manifest.version} needs {dep} {range_text}, but {org.slug} "
                    f"has {dep} {row.version}",
                    location=f"dependencies.{dep}",
                    hint=f"update {dep} first (`apprt update {dep}@{range_text} --org "
                    f"{org.slug}`), or ask for an older version of {manifest.id}",
                )
            )
    return problems


def choose_update(
    session: Session,
    org: Organization,
    row: Installation,
    newer: list[AppVersion],
    platform_version: str = PLATFORM_API_VERSION,
) -> Compatible:
    """The newest of ``newer`` that runs on this platform, keeps the ranges of the
    installed apps depending on it, and whose own dependencies the installed apps
    satisfy; each refusal names the app and the range."""
    fitting = [v for v in newer if not dependency_problems(session, org, _manifest_of(v))]
    if not fitting:
        # Platform or dependents refuse first when they are the reason (named there).
        choose_compatible(session, org, row.app_id, newer, platform_version)
        raise IncompatibleError(
            dependency_problems(session, org, _manifest_of(newer[0])),
            title="dependencies not satisfied",
        )
    compatible = choose_compatible(session, org, row.app_id, fitting, platform_version)
    manifest = _manifest_of(compatible.version)
    if manifest.tenancy.value != row.tenancy or (manifest.backend is not None) != row.has_backend:
        what = (
            f"tenancy {row.tenancy} -> {manifest.tenancy.value}"
            if manifest.tenancy.value != row.tenancy
            else ("a backend added" if manifest.backend is not None else "its backend removed")
        )
        raise IncompatibleError.one(
            f"{row.app_id} {compatible.version.version} changes how it runs ({what}); an "
            "update keeps the instance",
            location="tenancy" if "tenancy" in what else "backend",
            hint=f"uninstall {row.app_id} (its data is retained) and install the new version",
        )
    return compatible


def planned_update(row: AppVersion) -> PlannedApp:
    return PlannedApp(
        app_id=row.app_id,
        version=row.version,
        sha256=row.sha256,
        size=row.size,
        manifest=_manifest_of(row),
        requested=True,
        manifest_text=row.manifest_text,
    )


def new_permissions(row: Installation, manifest: Manifest) -> list[str]:
    """The permissions ``manifest`` declares that the installation was not granted."""
    granted = set(row.grants or [])
    return [p.permission for p in manifest.permissions if p.permission not in granted]


def update_grants(
    row: Installation,
    planned: PlannedApp,
    *,
    accept_all: bool,
    consent: Mapping[str, Iterable[str]] | None,
) -> list[str]:
    """The grants of the new version: everything it declares, once the permissions new
    since the installed version are consented to (``accept_all``, or ``consent``)."""
    given = {k: set(v) for k, v in (consent or {}).items()}
    ok = given.get(planned.app_id, set()) | given.get("*", set())
    problems = []
    for perm in new_permissions(row, planned.manifest):
        if accept_all or perm in ok:
            continue
        request = next(r for r in planned.manifest.permissions if r.permission == perm)
        reason = f" ({request.reason})" if request.reason else ""
        problems.append(
            Problem(
                f"{planned.app_id} {planned.version} asks for {perm!r}{reason}, new since "
                f"{row.version}, which was not consented to",
                location=f"consent.{planned.app_id}",
                hint="review the new permissions (`apprt update` without --accept-permissions, "
                "or GET .../apps/{app}/update), then consent with --accept-permissions",
            )
        )
    if problems:
        raise ConsentRequiredError(problems, title="consent required")
    return list(planned.permissions)


def carry_config(
    row: Installation, manifest: Manifest, given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The organization's settings for the new version: the installed ones it still
    knows, ``given`` over them, the new defaults for the rest; validated."""
    properties = manifest.config.get("properties", {})
    open_schema = manifest.config.get("additionalProperties") is True
    kept = {k: v for k, v in (row.config or {}).items() if open_schema or k in properties}
    unknown = [] if open_schema else sorted(set(given or {}) - set(properties))
    if unknown:
        known = ", ".join(sorted(properties)) or "none"
        raise InvalidConfigError(
            [
                Problem(
                    f"{manifest.id} {manifest.version} has no setting {key!r}",
                    location=f"config.{key}",
                    hint=f"its settings are: {known}",
                )
                for key in unknown
            ],
            title=f"invalid settings for {manifest.id}",
        )
    return validate_config(manifest, {**kept, **dict(given or {})})


# -- the in-memory view for the hot path ---------------------------------------------


@dataclass(frozen=True)
class ActiveApp:
    org: str
    app_id: str
    version: str
    config_json: str


class InstallationIndex:
    """Active installations by (org slug, app id), with their settings as JSON.

    Kept in memory by the install component (loaded at start, changed by the jobs) so
    the gateway can send ``x-apprt-config`` and refuse apps not (yet) active without a
    query per request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str], ActiveApp] = {}

    def load(self, session: Session) -> None:
        rows = session.execute(
            select(Organization.slug, Installation)
            .join(Organization, Organization.id == Installation.org_id)
            .where(Installation.state == InstallState.ACTIVE)
        ).all()
        with self._lock:
            self._active = {
                (slug, row.app_id): ActiveApp(slug, row.app_id, row.version, json.dumps(row.config))
                for slug, row in rows
            }

    def set_active(self, org: str, row: Installation) -> None:
        with self._lock:
            self._active[(org, row.app_id)] = ActiveApp(
                org, row.app_id, row.version, json.dumps(row.config)
            )

    def remove(self, org: str, app_id: str) -> None:
        with self._lock:
            self._active.pop((org, app_id), None)

    def get(self, org: str, app_id: str) -> ActiveApp | None:
        return self._active.get((org, app_id))

    def config_json(self, org: str, app_id: str) -> str:
        """The settings the gateway sends the app (``{}`` when not installed)."""
        active = self._active.get((org, app_id))
        return active.config_json if active is not None else "{}"
