"""The install and uninstall jobs: the blueprint's ten steps, and four to remove an app.

Each step is a :class:`~apprt.jobs.Step` whose ``run`` is idempotent (it looks at
what exists and does the rest: the engine re-runs the step that was interrupted by
a crash) and whose ``compensate`` tolerates work never done (the engine undoes the
failed step too). A compensation works from what it finds in the database and on
disk, never only from the step's own output (a step that died has none).

Install (``install``), one job for the whole plan (the app and the dependencies it
pulls in, dependencies first):

==  ===============  ===========================================  =========================
#   step             does                                         undone by
==  ===============  ===========================================  =========================
1   resolve          the app exists; versions inside the range     (nothing to undo)
2   compatibility    platform API range; installed apps that        (nothing to undo)
                     depend on it; deprecation/yank notices
3   dependencies     the resolver's plan, dependencies first       (nothing to undo)
4   allocate         quota check; an ``installing`` row per app     rows deleted
5   sandbox          runtime present, disk space, staging dir,     staging removed
                     retained data unpacked for restore
6   download         every package through ``tuf.ngclient``,       downloaded files removed;
                     contents verified, into the blob store         blobs nobody references
7   deploy           unpacked once (content-addressed), uv env,    routes, instances and their
                     ``supervisor.deploy`` (its route closed to     data; unused trees/envs
                     the gateway); restored data moved in
8   configure        consent checked, settings validated           (rows go with step 4)
                     (defaults applied), recorded
9   health           ``supervisor.activate``; health path over     (instances go with step 7)
                     the ingress socket within the timeout; then
                     each app's ``hooks.install`` in its sandbox
                     (dependencies first; a failing hook fails
                     the install)
10  activate         rows active, settings to the gateway, routes  rows back to installing,
                     opened: the URL answers                      routes closed
==  ===============  ===========================================  =========================

The install hook runs at least once: a crash during or after it (before the health
step is recorded done) runs the step, and the hook, again when the job resumes, so a
hook must tolerate being called again (check before creating what it creates).

Update (``update``): see :mod:`apprt.install.update`.

Uninstall (``uninstall``): ``stop_traffic`` (row uninstalling, the app out of the
gateway's index, its sandbox stopped after requests in flight), ``hook`` (the
manifest's uninstall hook, run in the app's sandbox through the runner's hook door; a
failing hook is reported, not fatal), ``export`` (data directory and state into a
retained archive), ``remove`` (route, sandbox and data, the row; unpacked tree and
environment when unused).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import shutil
import time
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from apprt.accounts.models import Organization
from apprt.blobs.store import BlobStore
from apprt.db.base import utcnow
from apprt.db.engine import session_scope
from apprt.errors import ApprtError, PackageError, Problem
from apprt.install import retention
from apprt.install.artifacts import ArtifactStore
from apprt.install.config import InstallConfig, install_root, retained_root
from apprt.install.environments import EnvironmentBuildError, EnvironmentStore, environment_key
from apprt.install.errors import (
    DiskFullError,
    HealthCheckError,
    HookError,
    InstallError,
    NotInstalledError,
    RuntimeUnavailableError,
    VerificationError,
)
from apprt.install.models import Installation, InstallState
from apprt.install.services import (
    InstallationIndex,
    PlannedApp,
    app_url,
    check_not_installed,
    check_quota,
    check_uninstallable,
    choose_compatible,
    consent_items,
    find_installation,
    grants_for,
    lock_org,
    pick_versions,
    plan_dependencies,
    planned_from,
    validate_config,
)
from apprt.jobs import JobKind, Step, StepContext
from apprt.manifest import Manifest, Tenancy, parse_manifest
from apprt.package import read_package
from apprt.registry.models import AppVersion
from apprt.registry.services import queries
from apprt.runtime.lifecycle import State
from apprt.runtime.models import Instance
from apprt.runtime.supervisor import DeploySpec, Supervisor, describe_exit
from apprt.settings import Settings

if TYPE_CHECKING:
    from apprt.install.tufclient import PackageDownloader

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

INSTALL = "install"
UNINSTALL = "uninstall"
#: Free disk space wanted per byte of package (the download, the unpacked tree, the
#: environment built from its wheels).
_SPACE_FACTOR = 4


# -- what the steps share -------------------------------------------------------------


@dataclass
class InstallEnv:
    """The platform services the steps use (on ``app.state.install``)."""

    settings: Settings
    config: InstallConfig
    sessions: sessionmaker[Session]
    blobs: BlobStore
    artifacts: ArtifactStore
    envs: EnvironmentStore
    index: InstallationIndex
    state: Any  # app.state: supervisor and tuf are read when needed (the runtime may be off)

    @classmethod
    def create(cls, state: Any, config: InstallConfig) -> InstallEnv:
        settings: Settings = state.settings
        root = install_root(settings)
        return cls(
            settings=settings,
            config=config,
            sessions=state.session_factory,
            blobs=state.blob_store,
            artifacts=ArtifactStore(root / "apps"),
            envs=EnvironmentStore(root / "envs", config.uv_cache or root / "uv-cache"),
            index=InstallationIndex(),
            state=state,
        )

    @property
    def supervisor(self) -> Supervisor | None:
        supervisor: Supervisor | None = getattr(self.state, "supervisor", None)
        return supervisor

    def require_supervisor(self) -> Supervisor:
        supervisor = self.supervisor
        if supervisor is None:
            error: ApprtError | None = getattr(self.state, "runtime_error", None)
            raise RuntimeUnavailableError(
                list(error.problems) if error else [Problem("the runtime is not running")],
                title="runtime unavailable",
            )
        return supervisor

    def staging(self, job_id: int) -> Path:
        return install_root(self.settings) / "staging" / f"job-{job_id}"

    @property
    def retained(self) -> Path:
        return retained_root(self.settings)

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        return self.require_supervisor().run_sync(coro, timeout)

    def trusted_root(self) -> bytes:
        if self.config.tuf_root is not None:
            return self.config.tuf_root.read_bytes()
        repository = getattr(self.state, "tuf", None)
        if repository is None:
            raise VerificationError.one(
                "this platform has no TUF repository to trust",
                location="APPRT_INSTALL_TUF_ROOT",
                hint="point APPRT_INSTALL_TUF_ROOT at the registry's 1.root.json",
            )
        with self.sessions() as session:
            root: bytes | None = repository.metadata_bytes(session, "root", 1)
        if root is None:
            raise VerificationError.one("the local TUF repository has no root metadata")
        return root

    def downloader(self) -> PackageDownloader:
        # Imported here: tuf.ngclient pulls urllib3 in, half a second of every start.
        from apprt.install.tufclient import PackageDownloader

        return PackageDownloader(
            base_url=self.config.resolved_registry_url(self.settings),
            trusted_root=self.trusted_root(),
            state_root=install_root(self.settings) / "tuf",
            timeout=self.config.download_timeout_s,
        )


def _env(ctx: StepContext) -> InstallEnv:
    env: InstallEnv = ctx.services.install
    return env


@contextlib.contextmanager
def _session(ctx: StepContext) -> Iterator[Session]:
    """A transaction that starts by taking the organization's lock (see ``lock_org``)."""
    with session_scope(_env(ctx).sessions) as session:
        lock_org(session, int(ctx.params["org_id"]))
        yield session


def _org(session: Session, ctx: StepContext) -> Organization:
    org = session.get(Organization, int(ctx.params["org_id"]))
    if org is None:
        raise InstallError.one(f"organization {ctx.params['org']} no longer exists", location="org")
    return org


def _report_notices(ctx: StepContext, notices: list[dict[str, Any]]) -> None:
    """A progress event for each deprecation or yank notice of the chosen version."""
    for notice in notices:
        replacement = f" (use {notice['replacement']})" if notice["replacement"] else ""
        ctx.progress(
            f"notice: {notice['app_id']} {notice['version']} is {notice['kind']}: "
            f"{notice['message']}{replacement}",
            notice=notice,
        )


def _plan(ctx: StepContext) -> list[PlannedApp]:
    with _session(ctx) as session:
        return planned_from(session, ctx.outputs["dependencies"]["plan"])


def _mine(session: Session, ctx: StepContext) -> dict[str, Installation]:
    rows = session.scalars(select(Installation).where(Installation.job_id == ctx.job_id))
    return {row.app_id: row for row in rows}


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, EnvironmentBuildError) and "No space left" in str(exc)


def _disk_full_error(what: str, where: Path) -> DiskFullError:
    free = shutil.disk_usage(where if where.exists() else where.parent).free >> 20
    return DiskFullError.one(
        f"no space left on the device while {what} ({free} MB free under {where})",
        location="disk",
        hint="free disk space on the platform host (or give it a larger volume), then "
        "install again; nothing was left behind",
    )


# -- 1. package resolution -----------------------------------------------------------


def resolve_package(ctx: StepContext) -> dict[str, Any]:
    app_id, range_text = ctx.params["app"], ctx.params["range"]
    with _session(ctx) as session:
        check_not_installed(session, _org(session, ctx), app_id)
        versions = pick_versions(session, app_id, range_text)
    ctx.progress(
        f"{app_id} {range_text}: {len(versions)} installable version(s), newest "
        f"{versions[0].version}",
        versions=[v.version for v in versions],
    )
    return {"app_id": app_id, "candidates": [v.version for v in versions]}


# -- 2. compatibility ----------------------------------------------------------------


def check_compatibility(ctx: StepContext) -> dict[str, Any]:
    app_id = ctx.params["app"]
    with _session(ctx) as session:
        org = _org(session, ctx)
        rows: list[AppVersion] = []
        for version in ctx.outputs["resolve"]["candidates"]:
            with contextlib.suppress(ApprtError):
                rows.append(queries.get_version(session, app_id, version))
        if not rows:
            rows = pick_versions(session, app_id, ctx.params["range"])
        compatible = choose_compatible(session, org, app_id, rows)
        chosen = compatible.version
        output = {"version": chosen.version, "sha256": chosen.sha256, "notices": compatible.notices}
    _report_notices(ctx, compatible.notices)
    ctx.progress(f"{app_id} {chosen.version} runs on this platform ({chosen.platform})")
    return output


# -- 3. dependency resolution --------------------------------------------------------


def resolve_dependencies(ctx: StepContext) -> dict[str, Any]:
    app_id, version = ctx.params["app"], ctx.outputs["compatibility"]["version"]
    with _session(ctx) as session:
        plan = plan_dependencies(session, _org(session, ctx), app_id, version)
    order = ", ".join(f"{p.app_id} {p.version}" for p in plan)
    ctx.progress(f"install order: {order}", plan=[p.as_dict() for p in plan])
    return {"plan": [p.as_dict() for p in plan]}


# -- 4. resource allocation ----------------------------------------------------------


def allocate(ctx: StepContext) -> dict[str, Any]:
    plan = _plan(ctx)
    with _session(ctx) as session:
        org = _org(session, ctx)
        if not _mine(session, ctx):
            for p in plan:
                check_not_installed(session, org, p.app_id)
            check_quota(session, org, plan)
            for p in plan:
                session.add(
                    Installation(
                        org_id=org.id,
                        app_id=p.app_id,
                        version=p.version,
                        package_sha256=p.sha256,
                        state=InstallState.INSTALLING,
                        requested=p.requested,
                        tenancy=p.tenancy,
                        has_backend=p.has_backend,
                        dependencies=dict(p.manifest.dependencies),
                        memory_mb=p.memory_mb,
                        storage_mb=p.storage_mb,
                        installed_by=ctx.params.get("actor", ""),
                        job_id=ctx.job_id,
                        url=app_url(org.slug, p.app_id),
                    )
                )
            session.flush()
        memory = sum(p.memory_mb for p in plan)
        storage = sum(p.storage_mb for p in plan)
        summary = (
            f"{len(plan)} app(s), {memory} MB memory, {storage} MB storage allocated in "
            f"{org.slug} (quotas: {org.max_apps} apps, {org.max_memory_mb} MB, "
            f"{org.max_storage_mb} MB)"
        )
    ctx.progress(summary)
    return {"apps": len(plan), "memory_mb": memory, "storage_mb": storage}


def release_allocation(ctx: StepContext) -> None:
    env = _env(ctx)
    with _session(ctx) as session:
        org = session.get(Organization, int(ctx.params["org_id"]))
        for row in _mine(session, ctx).values():
            if org is not None:
                env.index.remove(org.slug, row.app_id)
        session.execute(delete(Installation).where(Installation.job_id == ctx.job_id))


# -- 5. sandbox creation -------------------------------------------------------------


def create_sandbox(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    plan = _plan(ctx)
    if any(p.has_backend for p in plan):
        env.require_supervisor()
    staging = env.staging(ctx.job_id)
    data_root = env.settings.data_dir
    need = sum(p.size for p in plan) * _SPACE_FACTOR + (env.config.min_free_mb << 20)
    free = shutil.disk_usage(data_root).free
    if free < need:
        raise DiskFullError.one(
            f"{free >> 20} MB free under {data_root}; installing "
            + ", ".join(p.app_id for p in plan)
            + f" needs about {need >> 20} MB (with APPRT_INSTALL_MIN_FREE_MB="
            f"{env.config.min_free_mb} kept free)",
            location="disk",
            hint="free disk space on the platform host, then install again",
        )
    try:
        staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        restored: dict[str, str] = {}
        if ctx.params.get("restore_data", True):
            org = ctx.params["org"]
            for p in plan:
                archive = retention.newest(env.retained, org, p.app_id, env.config.retention_days)
                if archive is None:
                    continue
                dest = staging / "restore" / p.app_id
                if not dest.is_dir():
                    partial = dest.with_name(dest.name + ".partial")
                    shutil.rmtree(partial, ignore_errors=True)
                    retention.restore(archive, partial)
                    partial.rename(dest)
                restored[p.app_id] = str(archive)
                ctx.progress(
                    f"{p.app_id}: data kept from its uninstall will be restored ({archive.name})"
                )
    except OSError as exc:
        if _disk_full(exc):
            raise _disk_full_error("preparing the sandbox", staging) from None
        raise
    sandboxes = [
        f"{p.app_id} ({p.tenancy}, {p.memory_mb} MB, {p.manifest.resources.cpu} CPU)"
        for p in plan
        if p.has_backend
    ]
    ctx.progress(
        "sandbox: " + ("; ".join(sandboxes) if sandboxes else "frontend only, no sandbox needed")
    )
    return {"staging": str(staging), "restored": restored}


def remove_sandbox(ctx: StepContext) -> None:
    shutil.rmtree(_env(ctx).staging(ctx.job_id), ignore_errors=True)


# -- 6. download and verification ----------------------------------------------------


def _stored(env: InstallEnv, digest: str) -> Path | None:
    """The blob store's own file of ``digest`` (local stores), if it has one."""
    path_of = getattr(env.blobs, "path_of", None)
    if path_of is None or not env.blobs.exists(digest):
        return None
    path: Path = path_of(digest)
    return path


def download(ctx: StepContext) -> dict[str, Any]:
    return {"verified": download_verified(ctx, _plan(ctx))}


def download_verified(ctx: StepContext, plan: list[PlannedApp]) -> list[str]:
    """Every package of ``plan`` through TUF into the blob store, contents verified
    against what the registry recorded (a stored copy is verified as well)."""
    env = _env(ctx)
    target_dir = env.staging(ctx.job_id) / "packages"
    local = {p.app_id: path for p in plan if (path := _stored(env, p.sha256)) is not None}
    try:
        files = env.downloader().download(
            [(p.app_id, p.version, p.sha256) for p in plan], target_dir, local
        )
        verified = []
        for p in plan:
            path = files[p.app_id]
            try:
                info = read_package(path)
            except PackageError as exc:
                raise VerificationError(
                    exc.problems, title=f"{p.app_id} {p.version} is not a valid package"
                ) from None
            if info.manifest_text != p.manifest_text:
                raise VerificationError.one(
                    f"the package of {p.app_id} {p.version} carries another manifest than the "
                    "registry recorded",
                    location=f"{p.app_id}@{p.version}",
                    hint="report it to the registry's operator",
                )
            how = "stored copy verified"
            if p.app_id not in local:
                with path.open("rb") as fh:
                    env.blobs.put(fh)
                path.unlink(missing_ok=True)
                how = "downloaded"
            verified.append(f"{p.app_id} {p.version}")
            ctx.progress(
                f"{p.app_id} {p.version}: {info.archive_size} bytes {how} against the registry's "
                f"TUF metadata (sha256 {p.sha256[:12]}...), {len(info.files)} files checked"
            )
    except OSError as exc:
        if _disk_full(exc):
            raise _disk_full_error("downloading the packages", target_dir) from None
        raise
    return verified


def discard_downloads(ctx: StepContext) -> None:
    if "dependencies" not in ctx.outputs:
        shutil.rmtree(_env(ctx).staging(ctx.job_id) / "packages", ignore_errors=True)
        return
    discard_blobs(ctx, [item["sha256"] for item in ctx.outputs["dependencies"]["plan"]])


def discard_blobs(ctx: StepContext, digests: list[str]) -> None:
    """Remove the job's downloads, and the blobs of ``digests`` nothing references."""
    env = _env(ctx)
    shutil.rmtree(env.staging(ctx.job_id) / "packages", ignore_errors=True)
    with _session(ctx) as session:
        for digest in digests:
            used = (
                session.scalars(
                    select(AppVersion.id).where(AppVersion.sha256 == digest).limit(1)
                ).first()
                or session.scalars(
                    select(Installation.id)
                    .where(Installation.package_sha256 == digest, Installation.job_id != ctx.job_id)
                    .limit(1)
                ).first()
            )
            if used is None:
                env.blobs.delete(digest)


# -- 7. runtime deployment -----------------------------------------------------------


def _granted(plan: list[PlannedApp], ctx: StepContext) -> dict[str, list[str]]:
    """What each app is granted at deploy: its permissions that were consented to
    (step 8 refuses the install when any is missing)."""
    accept = bool(ctx.params.get("accept_permissions"))
    consent: dict[str, list[str]] = ctx.params.get("consent") or {}
    granted = {}
    for p in plan:
        ok = set(consent.get(p.app_id, [])) | set(consent.get("*", []))
        granted[p.app_id] = [perm for perm in p.permissions if accept or perm in ok]
    return granted


def _unpack(env: InstallEnv, p: PlannedApp) -> Path:
    try:
        return env.artifacts.ensure(env.blobs, p.sha256)
    except (OSError, PackageError) as exc:
        tree = env.artifacts.path_for(p.sha256)
        if isinstance(exc, PackageError) and tree.is_dir():
            return tree  # another job unpacked the same package meanwhile

        if _disk_full(exc) or (isinstance(exc, PackageError) and "No space left" in str(exc)):
            raise _disk_full_error(f"unpacking {p.app_id}", env.artifacts.root) from None
        raise


def _environment(env: InstallEnv, p: PlannedApp, tree: Path) -> tuple[Path | None, str | None]:
    wheels = sorted((tree / "wheels").glob("*.whl"))
    try:
        built = env.envs.ensure(wheels)
    except (OSError, EnvironmentBuildError) as exc:
        if _disk_full(exc):
            raise _disk_full_error(f"building {p.app_id}'s environment", env.envs.root) from None
        raise
    if built is None:
        return None, None
    return built.site_packages, built.root.name


def deploy(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    plan = _plan(ctx)
    org = ctx.params["org"]
    granted = _granted(plan, ctx)
    staging = env.staging(ctx.job_id)
    deployed = []
    for p in plan:
        started = time.perf_counter()
        tree = _unpack(env, p)
        env_key = None
        if p.has_backend:
            site_packages, env_key = _environment(env, p, tree)
            supervisor = env.require_supervisor()
            spec = DeploySpec.from_manifest(
                p.manifest, tree, org=org, env_dir=site_packages, grants=granted[p.app_id]
            )
            # The route stays closed to the gateway until step 10 opens it.
            info = env.run(supervisor.deploy(spec, live=False))
            if p.manifest.tenancy is Tenancy.isolated:
                slot = supervisor.lookup(org, p.app_id)
                restored = staging / "restore" / p.app_id / "data"
                if slot is not None and restored.is_dir():
                    try:
                        moved = retention.move_contents(restored, slot.data_dir)
                    except OSError as exc:
                        if _disk_full(exc):
                            raise _disk_full_error("restoring data", slot.data_dir) from None
                        raise
                    if moved:
                        ctx.progress(f"{p.app_id}: {moved} retained data entries restored")
            where = f"instance {info.id} ({info.driver}, {info.state.value})"
        else:
            where = "frontend only (served by the shell)"
        with _session(ctx) as session:
            row = _mine(session, ctx).get(p.app_id)
            if row is not None:
                row.env_key = env_key
        deployed.append(p.app_id)
        ctx.progress(
            f"{p.app_id} {p.version}: unpacked at {tree.name[:12]}..., "
            f"{'environment ' + env_key[:12] + '..., ' if env_key else ''}{where} "
            f"in {time.perf_counter() - started:.2f} s"
        )
    return {"deployed": deployed}


def _still_used(session: Session, env: InstallEnv, ctx: StepContext, digest: str) -> bool:
    """Whether another installation (or a live instance) uses the unpacked tree ``digest``."""
    other = session.scalars(
        select(Installation.id)
        .where(Installation.package_sha256 == digest, Installation.job_id != ctx.job_id)
        .limit(1)
    ).first()
    if other is not None:
        return True
    tree = str(env.artifacts.path_for(digest))
    live = session.scalars(
        select(Instance.id).where(Instance.code_dir == tree, Instance.removed_at.is_(None)).limit(1)
    ).first()
    return live is not None


def _env_used(session: Session, env: InstallEnv, ctx: StepContext, key: str) -> bool:
    other = session.scalars(
        select(Installation.id)
        .where(Installation.env_key == key, Installation.job_id != ctx.job_id)
        .limit(1)
    ).first()
    if other is not None:
        return True
    # An installation elsewhere may be building this environment right now.
    building = session.scalars(
        select(Installation.id)
        .where(Installation.state == InstallState.INSTALLING, Installation.job_id != ctx.job_id)
        .limit(1)
    ).first()
    if building is not None:
        return True
    prefix = str(env.envs.root / key)
    live = session.scalars(
        select(Instance.env_dir).where(Instance.removed_at.is_(None), Instance.env_dir.is_not(None))
    ).all()
    return any(d is not None and d.startswith(prefix) for d in live)


def release_artifacts(env: InstallEnv, ctx: StepContext, digest: str) -> None:
    """Remove the unpacked tree of ``digest`` and its environment when nothing uses them."""
    tree = env.artifacts.path_for(digest)
    key = None
    if tree.is_dir():
        wheels = sorted((tree / "wheels").glob("*.whl"))
        key = environment_key(wheels) if wheels else None
    with env.sessions() as session:
        if key is not None and not _env_used(session, env, ctx, key):
            env.envs.remove(key)
        if not _still_used(session, env, ctx, digest):
            env.artifacts.remove(digest)


def undeploy(ctx: StepContext) -> None:
    env = _env(ctx)
    if "dependencies" not in ctx.outputs:
        return
    plan = _plan(ctx)
    org = ctx.params["org"]
    with _session(ctx) as session:
        mine = set(_mine(session, ctx))
    supervisor = env.supervisor
    for p in reversed(plan):
        if p.app_id not in mine:
            continue
        if p.has_backend and supervisor is not None and supervisor.lookup(org, p.app_id):
            env.run(supervisor.uninstall(org, p.app_id, purge=True))
            ctx.progress(f"{p.app_id}: route and sandbox removed")
        release_artifacts(env, ctx, p.sha256)


# -- 8. configuration and integration ------------------------------------------------


def configure(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    plan = _plan(ctx)
    grants = grants_for(
        plan,
        accept_all=bool(ctx.params.get("accept_permissions")),
        consent=ctx.params.get("consent"),
    )
    configs = {
        p.app_id: validate_config(p.manifest, ctx.params.get("config", {}) if p.requested else {})
        for p in plan
    }
    staging = env.staging(ctx.job_id)
    imported = []
    with _session(ctx) as session:
        state = retention.state_module(session)
        org = _org(session, ctx)
        rows = _mine(session, ctx)
        restored = ctx.outputs.get("sandbox", {}).get("restored", {})
        for p in plan:
            row = rows[p.app_id]
            row.config = configs[p.app_id]
            row.grants = grants[p.app_id]
            row.restored_from = restored.get(p.app_id)
            state_file = staging / "restore" / p.app_id / "state.json"
            if state is not None and state_file.exists():
                state.import_state(session, org.slug, p.app_id, json.loads(state_file.read_text()))
                imported.append(p.app_id)
    for app_id in imported:  # (progress writes in its own transaction: after ours)
        ctx.progress(f"{app_id}: retained state restored")
    for item in consent_items(plan):
        perms = ", ".join(x["permission"] for x in item["permissions"]) or "none"
        ctx.progress(f"{item['app_id']}: granted {perms} (consented)")
    for p in plan:
        ctx.progress(f"{p.app_id}: settings {configs[p.app_id]}")
    return {"config": configs, "grants": grants}


def unconfigure(ctx: StepContext) -> None:
    if "dependencies" not in ctx.outputs:
        return
    staging = _env(ctx).staging(ctx.job_id)
    with _session(ctx) as session:
        state = retention.state_module(session)
        if state is None:
            return
        for item in ctx.outputs["dependencies"]["plan"]:
            if (staging / "restore" / item["app_id"] / "state.json").exists():
                _drop_state(state, session, ctx.params["org"], item["app_id"])


def _drop_state(state: Any, session: Session, org: str, app_id: str) -> None:
    remover = getattr(state, "delete_all", None)
    if remover is not None:
        remover(session, org, app_id)
    else:
        state.import_state(session, org, app_id, {})


# -- 9. health check -----------------------------------------------------------------


def _probe(socket_path: Path, path: str) -> int:
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, timeout=2.0) as client:
        return client.get(f"http://app{path}").status_code


def _start(env: InstallEnv, org: str, app_id: str) -> None:
    """Start the app's instance (in the background: ``wait_healthy`` waits for it)."""
    supervisor = env.require_supervisor()
    try:
        env.run(supervisor.activate(org, app_id, wait=False))
    except ApprtError as exc:
        raise HealthCheckError(exc.problems, title=f"{app_id} did not start") from None


def _until_running(env: InstallEnv, org: str, app_id: str, timeout: float) -> None:
    """Block until the instance is Running (StartFailedError when it ends Failed)."""
    supervisor = env.require_supervisor()
    loop = supervisor.loop
    if loop is None:
        raise RuntimeError("the supervisor is not started")
    future = asyncio.run_coroutine_threadsafe(supervisor.activate(org, app_id), loop)
    try:
        future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


def wait_healthy(env: InstallEnv, org: str, manifest: Manifest, timeout: float) -> float:
    """Start the app's instance if needed, wait until it runs and its health path
    answers 2xx over the ingress socket; seconds it took."""
    supervisor = env.require_supervisor()
    app_id = manifest.id
    health = manifest.backend.health if manifest.backend is not None else "/healthz"
    started = time.monotonic()
    deadline = started + timeout
    last = "it did not start"
    try:
        _until_running(env, org, app_id, timeout)
    except TimeoutError:
        pass  # reported below with the rest
    except ApprtError:
        info = supervisor.get(org, app_id)
        tail = (info.failure_log or "").strip().splitlines()[-3:]
        raise HealthCheckError.one(
            f"{app_id} failed to start: {describe_exit(info.last_exit)}",
            location=f"{org}/{app_id}",
            hint="fix the app and publish a new version; last output: "
            + (" | ".join(tail) if tail else "none"),
            title="health check failed",
        ) from None
    while time.monotonic() < deadline:
        slot = supervisor.lookup(org, app_id)
        handle = slot.handle if slot is not None else None
        if slot is not None and slot.state is State.RUNNING and handle is not None:
            try:
                status = _probe(handle.ingress_socket, health)
            except httpx.HTTPError as exc:
                last = f"GET {health} failed: {exc}"
            else:
                if 200 <= status < 300:
                    return time.monotonic() - started
                last = f"GET {health} answered {status}"
        elif slot is not None:
            last = f"it is {slot.state.value}"
        time.sleep(0.02)
    raise HealthCheckError.one(
        f"{app_id} was not healthy within {timeout:g} s: {last}",
        location=f"{org}/{app_id}{health}",
        hint=f"`apprt logs {app_id} --org {org}` shows what it printed; its health path "
        "must answer 2xx",
    )


def check_health(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    plan = _plan(ctx)
    org = ctx.params["org"]
    healthy = {}
    for p in plan:  # every sandbox starts at once; their health is checked in order
        if p.has_backend:
            _start(env, org, p.app_id)
    for p in plan:
        if p.has_backend:
            seconds = wait_healthy(env, org, p.manifest, env.config.health_timeout_s)
            healthy[p.app_id] = round(seconds, 3)
            ctx.progress(f"{p.app_id}: healthy in {seconds:.2f} s")
        else:
            assert p.manifest.frontend is not None
            entry = env.artifacts.path_for(p.sha256) / "frontend" / p.manifest.frontend.entry
            if not entry.is_file():
                raise HealthCheckError.one(
                    f"{p.app_id}'s frontend entry {p.manifest.frontend.entry} is missing",
                    location="frontend.entry",
                )
            healthy[p.app_id] = 0.0
            ctx.progress(f"{p.app_id}: frontend entry present")
    hooks = {}
    for p in plan:  # dependencies first: an app's hook may use what they offer
        hook = p.manifest.backend.hooks.install if p.manifest.backend is not None else None
        if not hook:
            continue
        context = {"event": "install", "org": org, "app": p.app_id, "version": p.version}
        result = call_app_hook(env, org, p.app_id, p.version, hook, "install", context)
        hooks[p.app_id] = hook
        ctx.progress(f"{p.app_id}: install hook {hook} ran", hook=hook, result=result)
    return {"healthy": healthy, "hooks": hooks}


def call_app_hook(
    env: InstallEnv,
    org: str,
    app_id: str,
    version: str,
    hook: str,
    event: str,
    context: dict[str, Any],
) -> Any:
    """Run the app's ``event`` hook in its sandbox (``supervisor.call_hook``); its result.

    A hook that raises, hangs or cannot run is a :class:`HookError` naming the hook and
    what went wrong (the step fails and the job rolls back).
    """
    supervisor = env.require_supervisor()
    try:
        return env.run(supervisor.call_hook(org, app_id, hook, context))
    except ApprtError as exc:
        details = [p.reason.removeprefix(f"hook {hook} of {app_id} ") for p in exc.problems]
        detail = "; ".join(details) or str(exc)
        raise HookError.one(
            f"{event} hook {hook} of {app_id} {version} {detail}"
            if detail.startswith(("failed", "did not"))
            else f"{event} hook {hook} of {app_id} {version} could not run: {detail}",
            location=f"backend.hooks.{event}",
            hint=f"fix the hook and publish a new version (`apprt logs {org} {app_id}` shows "
            "what it printed); the job was rolled back",
            title=f"{event} hook failed",
        ) from None


# -- 10. activation ------------------------------------------------------------------


def activate(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org_slug = ctx.params["org"]
    installed = []
    with _session(ctx) as session:
        rows = _mine(session, ctx)
        now = utcnow()
        for row in rows.values():
            row.state = InstallState.ACTIVE
            row.activated_at = row.activated_at or now
            installed.append({"app_id": row.app_id, "version": row.version, "url": row.url})
        session.flush()
        for row in rows.values():
            env.index.set_active(org_slug, row)
    # After the rows' commit (the route's row is written in a transaction of its own).
    open_routes(env, org_slug, [row["app_id"] for row in installed], live=True)
    shutil.rmtree(env.staging(ctx.job_id), ignore_errors=True)
    url = app_url(org_slug, ctx.params["app"])
    ctx.progress(f"{ctx.params['app']} is live at {url}", url=url)
    return {"url": url, "installed": installed}


def deactivate(ctx: StepContext) -> None:
    env = _env(ctx)
    with _session(ctx) as session:
        app_ids = list(_mine(session, ctx))
    # Closed first, before the rows say "installing" (and in a transaction of its own).
    open_routes(env, ctx.params["org"], app_ids, live=False)
    with _session(ctx) as session:
        for row in _mine(session, ctx).values():
            row.state = InstallState.INSTALLING
            env.index.remove(ctx.params["org"], row.app_id)


def open_routes(env: InstallEnv, org: str, app_ids: Iterable[str], *, live: bool) -> None:
    """Open (or close) the gateway's routes to the plan's apps that have a sandbox."""
    supervisor = env.supervisor
    if supervisor is None:
        return
    for app_id in app_ids:
        if supervisor.lookup(org, app_id) is not None:
            env.run(supervisor.open_route(org, app_id, live=live))


INSTALL_KIND = JobKind(
    INSTALL,
    [
        Step("resolve", "Package resolution", resolve_package),
        Step("compatibility", "Compatibility check", check_compatibility),
        Step("dependencies", "Dependency resolution", resolve_dependencies),
        Step("allocate", "Resource allocation", allocate, release_allocation),
        Step("sandbox", "Sandbox creation", create_sandbox, remove_sandbox),
        Step("download", "Package download & verification", download, discard_downloads),
        Step("deploy", "Runtime deployment", deploy, undeploy),
        Step("configure", "Configuration & integration", configure, unconfigure),
        Step("health", "Health check", check_health),
        Step("activate", "Activation", activate, deactivate),
    ],
)


# == uninstall ==========================================================================


def _row(session: Session, ctx: StepContext) -> Installation | None:
    org = session.get(Organization, int(ctx.params["org_id"]))
    if org is None:
        return None
    return find_installation(session, org, ctx.params["app"])


def _manifest_of(session: Session, row: Installation) -> Manifest:
    return parse_manifest(queries.get_version(session, row.app_id, row.version).manifest_text)


def stop_traffic(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org, app_id = ctx.params["org"], ctx.params["app"]
    with _session(ctx) as session:
        row = _row(session, ctx)
        if row is None:
            raise NotInstalledError.one(f"{app_id} is not installed in {org}", location="app")
        check_uninstallable(session, _org(session, ctx), row, job_id=ctx.job_id)
        row.state = InstallState.UNINSTALLING
        row.job_id = ctx.job_id
        has_backend, tenancy = row.has_backend, row.tenancy
    env.index.remove(org, app_id)
    supervisor = env.supervisor
    if has_backend and supervisor is not None:
        slot = supervisor.lookup(org, app_id)
        if slot is not None and tenancy == Tenancy.isolated.value:
            env.run(supervisor.suspend(org, app_id, reason="uninstalling"))
            ctx.progress(f"{app_id}: requests in flight finished, sandbox stopped")
        elif slot is not None:
            ctx.progress(f"{app_id}: shared instance; {org} no longer reaches it")
    return {"stopped": True}


def resume_traffic(ctx: StepContext) -> None:
    env = _env(ctx)
    with _session(ctx) as session:
        row = _row(session, ctx)
        if row is None or row.job_id != ctx.job_id:
            return  # this job never stopped it
        row.state = InstallState.ACTIVE
        session.flush()
        env.index.set_active(ctx.params["org"], row)
    ctx.progress(f"{ctx.params['app']} is back (it wakes on the next request)")


def run_uninstall_hook(ctx: StepContext) -> dict[str, Any]:
    """Run the app's uninstall hook in its sandbox (woken for it, stopped again after).

    A hook that fails or hangs is reported, not fatal: a broken app must still be
    removable, and its data is kept in the retained archive either way.
    """
    env = _env(ctx)
    org, app_id = ctx.params["org"], ctx.params["app"]
    with _session(ctx) as session:
        row = _row(session, ctx)
        manifest = _manifest_of(session, row) if row is not None else None
        tenancy = row.tenancy if row is not None else Tenancy.isolated.value
    hook = manifest.backend.hooks.uninstall if manifest and manifest.backend else None
    supervisor = env.supervisor
    if manifest is None or not hook or supervisor is None or supervisor.lookup(org, app_id) is None:
        ctx.progress("no uninstall hook declared" if not hook else f"{app_id} has no sandbox")
        return {"hook": hook, "ran": False}
    context = {"event": "uninstall", "org": org, "app": app_id, "version": manifest.version}
    try:
        result = env.run(supervisor.call_hook(org, app_id, hook, context))
    except ApprtError as exc:
        ctx.progress(f"uninstall hook {hook} failed; going on: {exc}", hook=hook)
        return {"hook": hook, "ran": False, "error": str(exc)}
    finally:
        if tenancy == Tenancy.isolated.value:  # back to stopped, as the traffic step left it
            env.run(supervisor.suspend(org, app_id, reason="uninstalling"))
    ctx.progress(f"uninstall hook {hook} ran", hook=hook, result=result)
    return {"hook": hook, "ran": True}


def _instance_data(env: InstallEnv, org: str, app_id: str) -> Path | None:
    supervisor = env.supervisor
    slot = supervisor.lookup(org, app_id) if supervisor is not None else None
    if slot is None or slot.tenancy is not Tenancy.isolated:
        return None
    return slot.data_dir


def _job_started(session: Session, ctx: StepContext) -> datetime:
    from apprt.jobs.models import Job

    return session.get_one(Job, ctx.job_id).created_at


def export_data(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org, app_id = ctx.params["org"], ctx.params["app"]
    retention.prune(env.retained, env.config.retention_days)
    if not ctx.params.get("keep_data", True):
        ctx.progress("data not kept (keep_data=false)")
        return {"archive": None}
    with _session(ctx) as session:
        state_module = retention.state_module(session)
        row = _row(session, ctx)
        version = row.version if row is not None else ""
        when = _job_started(session, ctx)
        state = state_module.export_state(session, org, app_id) if state_module else None
    data_dir = _instance_data(env, org, app_id)
    try:
        if data_dir is not None:
            with retention.read_data_dir(data_dir) as readable:
                archive = retention.export(
                    env.retained, org=org, app_id=app_id, version=version, data=readable,
                    state=state, when=when,
                )  # fmt: skip
        else:
            archive = retention.export(
                env.retained, org=org, app_id=app_id, version=version, data=None,
                state=state, when=when,
            )  # fmt: skip
    except OSError as exc:
        if _disk_full(exc):
            raise _disk_full_error("exporting the app's data", env.retained) from None
        raise
    kept = "data directory" if data_dir is not None else "no data directory (shared instance)"
    kept += " and state" if state is not None else " (state export not available)"
    days = env.config.retention_days
    ctx.progress(f"{app_id}: {kept} kept in {archive} for {days:g} days", archive=str(archive))
    return {"archive": str(archive)}


def discard_export(ctx: StepContext) -> None:
    """Delete the archive this job wrote, but only while the data it holds still exists."""
    env = _env(ctx)
    org, app_id = ctx.params["org"], ctx.params["app"]
    if _instance_data(env, org, app_id) is None:
        return  # the instance (and its data) is gone: keep the archive
    with _session(ctx) as session:
        when = _job_started(session, ctx)
    retention.archive_path(env.retained, org, app_id, when).unlink(missing_ok=True)


def remove_installation(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org, app_id = ctx.params["org"], ctx.params["app"]
    supervisor = env.supervisor
    if supervisor is not None and supervisor.lookup(org, app_id) is not None:
        env.run(supervisor.uninstall(org, app_id, purge=True))
        ctx.progress(f"{app_id}: route, sandbox and data removed")
    digest = None
    with _session(ctx) as session:
        state_module = retention.state_module(session)
        row = _row(session, ctx)
        if row is not None:
            digest = row.package_sha256
            session.delete(row)
        if state_module is not None:
            _drop_state(state_module, session, org, app_id)
    if digest is not None:
        release_artifacts(env, ctx, digest)
    ctx.progress(f"{app_id} uninstalled from {org}")
    return {"removed": app_id}


UNINSTALL_KIND = JobKind(
    UNINSTALL,
    [
        Step("stop_traffic", "Stop traffic", stop_traffic, resume_traffic),
        Step("hook", "Uninstall hook", run_uninstall_hook),
        Step("export", "Export data to a retained archive", export_data, discard_export),
        Step("remove", "Remove sandbox and data", remove_installation),
    ],
)


# -- start-up housekeeping ----------------------------------------------------------------


def collect_garbage(env: InstallEnv) -> dict[str, int]:
    """Remove unpacked trees, environments and staging directories nothing uses.

    Run at start, before unfinished jobs resume; skipped (but for staging directories
    of finished jobs) while any job is unfinished, since a resuming job may be
    building what looks unused.
    """
    from apprt.jobs.models import Job, JobState

    removed = {"apps": 0, "envs": 0, "staging": 0}
    with env.sessions() as session:
        digests = set(session.scalars(select(Installation.package_sha256)))
        keys = {k for k in session.scalars(select(Installation.env_key)) if k}
        unfinished = set(
            session.scalars(
                select(Job.id).where(
                    Job.state.in_((JobState.PENDING, JobState.RUNNING, JobState.ROLLING_BACK))
                )
            )
        )
        live = session.execute(
            select(Instance.code_dir, Instance.env_dir).where(Instance.removed_at.is_(None))
        ).all()
    staging_root = install_root(env.settings) / "staging"
    if staging_root.is_dir():
        for folder in staging_root.iterdir():
            job = folder.name.removeprefix("job-")
            if job.isdigit() and int(job) in unfinished:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed["staging"] += 1
    if unfinished:
        return removed
    trees_in_use = digests | {Path(code).name for code, _ in live}
    envs_in_use = set(keys)
    for _, env_dir in live:
        if env_dir and Path(env_dir).is_relative_to(env.envs.root):
            envs_in_use.add(Path(env_dir).relative_to(env.envs.root).parts[0])
    if env.artifacts.root.is_dir():
        for tree in env.artifacts.root.iterdir():
            if tree.name.startswith(".") or tree.name in trees_in_use:
                continue
            env.artifacts.remove(tree.name)
            removed["apps"] += 1
    if env.envs.root.is_dir():
        for folder in env.envs.root.iterdir():
            if folder.name.startswith(".") or folder.name in envs_in_use:
                continue
            env.envs.remove(folder.name)
            removed["envs"] += 1
    return removed
