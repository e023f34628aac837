"""The update job: an installed app moved to a newer version, or left exactly as it was.

Same rules as the install job (:mod:`apprt.install.steps`): every ``run`` is idempotent
(a crash re-runs the interrupted step), every ``compensate`` tolerates work never done
and works from what it finds, and a failing step rolls the whole job back in reverse
order. The installation row stays ``active`` and carries the job's id while the job
runs, so other updates and uninstalls of it wait. The old version serves until step 6
closes the route; from there to activation the gateway answers 503 with Retry-After
(the new version is not served before its upgrade hook and health check).

====  ==============  ==========================================  ==========================
#     step            does                                        undone by
====  ==============  ==========================================  ==========================
1     resolve         the app is installed and active, nobody     the row's job id back
                      else changes it; the versions in the range
                      newer than the installed one (none: 409
                      "already up to date", nothing changed); the
                      installed row and instance spec recorded
2     compatibility   the newest of them that runs on this        (nothing to undo)
                      platform API, fits the ranges of the
                      installed apps depending on it, and whose
                      dependencies the installed apps satisfy;
                      same tenancy and backend; quotas
3     consent         permissions new since the installed         (nothing to undo)
                      version consented to (as for an install);
                      the settings carried over and validated
4     download        the package through ``tuf.ngclient``,       downloaded file removed;
                      contents verified, into the blob store      its blob if unreferenced
5     deploy          unpacked (content-addressed) and its uv     the new tree and env
                      environment built                           when nothing uses them
6     backup          the route closed; then the app's state      the route opened (the old
                      backed up (``apprt.services.backup``,       version is back by then)
                      reason ``upgrade``); its name in the output
7     swap            ``supervisor.update`` to the new version    ``supervisor.update`` back
                      (its old sandbox stops, the new starts;     to the recorded old spec,
                      an instance asleep just changes version)    then the state restored
                                                                  from step 6's backup
8     hook            the new version's ``hooks.upgrade`` in its  (with step 7)
                      sandbox, with ``previous_version``
9     health          the new version runs and its health path    (with step 7)
                      answers 2xx within the timeout
10    activate        row: version, package, env, grants,         the route closed, the
                      settings, dependencies, resources; the      recorded row fields back
                      gateway's settings; the route opened;
                      unused old tree/env released
====  ==============  ==========================================  ==========================

The upgrade hook runs at least once: a crash during or after it, before the step is
recorded done, runs it again when the job resumes (a hook must tolerate that). If the
swap or a later step fails, the state goes back to the backup taken before the swap
once the old version is back, whatever changed it (the hook, or the new version at
start-up); the state as it was at the rollback is kept too, as a ``before-restore``
backup. The instance's data directory is the same
for both versions and is not snapshotted: hooks should change files only in ways the
old version still reads.

A shared-tenancy app has one instance for all its organizations: it is updated here
only while a single organization uses it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.orm import Session

from apprt.accounts.models import Organization
from apprt.db.engine import session_scope
from apprt.errors import ApprtError
from apprt.install.errors import HealthCheckError, IncompatibleError, InstallError
from apprt.install.models import Installation
from apprt.install.services import (
    UPDATE,
    PlannedApp,
    carry_config,
    check_quota,
    choose_update,
    find_installation,
    new_permissions,
    newer_versions,
    planned_from,
    planned_update,
    updatable,
    update_grants,
)
from apprt.install.steps import (
    InstallEnv,
    _env,
    _environment,
    _org,
    _report_notices,
    _session,
    _unpack,
    call_app_hook,
    discard_blobs,
    download_verified,
    open_routes,
    release_artifacts,
    wait_healthy,
)
from apprt.jobs import JobKind, Step, StepContext
from apprt.manifest import Resources, Tenancy
from apprt.registry.services import queries
from apprt.runtime.lifecycle import IllegalTransitionError, State
from apprt.runtime.supervisor import DeploySpec, Supervisor

log = structlog.get_logger(__name__)

#: How long a compensation waits for an instance that is starting (or crash-looping)
#: to settle before it puts the old version back.
_SETTLE_S = 60.0


def _row(session: Session, ctx: StepContext) -> Installation:
    return updatable(session, _org(session, ctx), ctx.params["app"], job_id=ctx.job_id)


def _planned(ctx: StepContext) -> PlannedApp:
    with _session(ctx) as session:
        return planned_from(session, [ctx.outputs["compatibility"]["planned"]])[0]


def _previous(ctx: StepContext) -> dict[str, Any]:
    previous: dict[str, Any] = ctx.outputs["resolve"]["previous"]
    return previous


# -- 1. resolve ------------------------------------------------------------------------


_ROW_FIELDS = (
    "version",
    "package_sha256",
    "env_key",
    "grants",
    "config",
    "dependencies",
    "memory_mb",
    "storage_mb",
    "job_id",
)


def _check_single_org(slot: Any, org: str, app_id: str) -> None:
    """Refuse to update a shared app's instance that other organizations use too."""
    others = sorted(slot.orgs - {org})
    if slot.tenancy is Tenancy.shared and others:
        raise IncompatibleError.one(
            f"{app_id} is a shared app whose instance also serves {', '.join(others)}",
            location="tenancy",
            hint="a shared app is updated for all its organizations at once, which "
            "`apprt update` does not do yet; uninstall it from the other organizations "
            "first, or wait for the rollout feature",
        )


def resolve_update(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org, app_id, range_text = ctx.params["org"], ctx.params["app"], ctx.params["range"]
    with _session(ctx) as session:
        organization = _org(session, ctx)
        row = _row(session, ctx)
        mine = row.job_id == ctx.job_id  # resumed: the row was marked by this job already
        previous = {name: getattr(row, name) for name in _ROW_FIELDS}
        if mine:
            previous["job_id"] = ctx.params.get("previous_job_id")
        newer = newer_versions(session, organization, row, range_text)
        row.job_id = ctx.job_id
        has_backend = row.has_backend
    instance = None
    if has_backend:
        supervisor = env.require_supervisor()
        slot = supervisor.lookup(org, app_id)
        if slot is None:
            raise InstallError.one(
                f"{app_id} has no instance in {org}",
                location=f"{org}/{app_id}",
                hint="uninstall it (its data is retained) and install it again",
            )
        _check_single_org(slot, org, app_id)
        instance = {
            "version": slot.version,
            "code_dir": str(slot.code_dir),
            "env_dir": str(slot.env_dir) if slot.env_dir else None,
            "entry": slot.entry,
            "tenancy": slot.tenancy.value,
            "resources": slot.resources.model_dump(),
            "trusted": slot.trusted,
            "grants": list(slot.grants),
            "idle_timeout_s": slot.idle_timeout_s,
            "state": slot.state.value,
        }
    versions = [v.version for v in newer]
    ctx.progress(
        f"{app_id} {previous['version']} in {org}: {len(versions)} newer version(s) in "
        f"{range_text!r}, newest {versions[0]}",
        versions=versions,
    )
    return {"previous": previous, "instance": instance, "candidates": versions}


def unmark(ctx: StepContext) -> None:
    """The row's job id back to what it was (if this job marked it)."""
    previous = ctx.outputs.get("resolve", {}).get("previous")
    with _session(ctx) as session:
        org = session.get(Organization, int(ctx.params["org_id"]))
        if org is None:
            return
        row = find_installation(session, org, ctx.params["app"])
        if row is not None and row.job_id == ctx.job_id:
            row.job_id = previous["job_id"] if previous else ctx.params.get("previous_job_id")


# -- 2. compatibility ------------------------------------------------------------------


def check_update_compatibility(ctx: StepContext) -> dict[str, Any]:
    app_id = ctx.params["app"]
    with _session(ctx) as session:
        organization = _org(session, ctx)
        row = _row(session, ctx)
        newer = [
            queries.get_version(session, app_id, version)
            for version in ctx.outputs["resolve"]["candidates"]
        ]
        compatible = choose_update(session, organization, row, newer)
        planned = planned_update(compatible.version)
        check_quota(session, organization, [planned], replacing=row)
        output = {
            "version": planned.version,
            "sha256": planned.sha256,
            "planned": planned.as_dict(),
            "notices": compatible.notices,
        }
        platform = compatible.version.platform
    _report_notices(ctx, compatible.notices)
    deps = ", ".join(f"{d} {r}" for d, r in sorted(planned.manifest.dependencies.items()))
    ctx.progress(
        f"{app_id} {planned.version} runs on this platform ({platform}); the apps depending "
        "on it accept it" + (f"; its dependencies are installed ({deps})" if deps else "")
    )
    return output


# -- 3. consent and settings -----------------------------------------------------------


def check_consent(ctx: StepContext) -> dict[str, Any]:
    planned = _planned(ctx)
    with _session(ctx) as session:
        row = _row(session, ctx)
        new = new_permissions(row, planned.manifest)
        grants = update_grants(
            row,
            planned,
            accept_all=bool(ctx.params.get("accept_permissions")),
            consent=ctx.params.get("consent"),
        )
        config = carry_config(row, planned.manifest, ctx.params.get("config") or {})
    ctx.progress(
        f"{planned.app_id}: new permissions {', '.join(new)} (consented)"
        if new
        else f"{planned.app_id}: no new permissions"
    )
    ctx.progress(f"{planned.app_id}: settings {config}")
    return {"grants": grants, "new_permissions": new, "config": config}


# -- 4. download -----------------------------------------------------------------------


def download_update(ctx: StepContext) -> dict[str, Any]:
    return {"verified": download_verified(ctx, [_planned(ctx)])}


def discard_update_download(ctx: StepContext) -> None:
    if "compatibility" not in ctx.outputs:
        shutil.rmtree(_env(ctx).staging(ctx.job_id), ignore_errors=True)
        return
    sha256 = ctx.outputs["compatibility"]["sha256"]
    if sha256 != _previous(ctx)["package_sha256"]:
        discard_blobs(ctx, [sha256])
    shutil.rmtree(_env(ctx).staging(ctx.job_id), ignore_errors=True)


# -- 5. deploy -------------------------------------------------------------------------


def _materialize(env: InstallEnv, planned: PlannedApp) -> tuple[Path, Path | None, str | None]:
    """The unpacked tree and environment of ``planned`` (made if missing)."""
    tree = _unpack(env, planned)
    if not planned.has_backend:
        return tree, None, None
    site_packages, env_key = _environment(env, planned, tree)
    return tree, site_packages, env_key


def deploy_update(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    planned = _planned(ctx)
    started = time.perf_counter()
    tree, _site, env_key = _materialize(env, planned)
    ctx.progress(
        f"{planned.app_id} {planned.version}: unpacked at {tree.name[:12]}..."
        + (f", environment {env_key[:12]}..." if env_key else "")
        + f" in {time.perf_counter() - started:.2f} s"
    )
    return {"tree": tree.name, "env_key": env_key}


def undeploy_update(ctx: StepContext) -> None:
    if "compatibility" not in ctx.outputs:
        return
    sha256 = ctx.outputs["compatibility"]["sha256"]
    if sha256 != _previous(ctx)["package_sha256"]:
        release_artifacts(_env(ctx), ctx, sha256)


# -- 6. backup -------------------------------------------------------------------------


def backup_state(ctx: StepContext) -> dict[str, Any]:
    """Close the app's route, then back up its state.

    Closed first, so no request changes the state after the backup: from here until
    activation the gateway answers 503 with Retry-After (the new version is not served
    before its upgrade hook and health check; zero-downtime rollouts run two versions
    side by side and are the hot-deployment work's).
    """
    from apprt.install import retention

    env = _env(ctx)
    org, app_id = ctx.params["org"], ctx.params["app"]
    open_routes(env, org, [app_id], live=False)
    # Its own session, not the job's org lock: the export only reads.
    with session_scope(env.sessions) as session:
        if retention.state_module(session) is None:
            ctx.progress("no state service on this platform: nothing to back up")
            return {"backup": None}
        from apprt.services import backup

        # A resumed step takes a new backup: the newest is the one the job relies on.
        path = backup.backup(session, org, app_id, data_dir=env.settings.data_dir, reason="upgrade")
    ctx.progress(f"{app_id}: state backed up as {path.name}", backup=path.name)
    return {"backup": path.name}


def reopen_route(ctx: StepContext) -> None:
    """The old version serves again (the later steps were undone before this)."""
    open_routes(_env(ctx), ctx.params["org"], [ctx.params["app"]], live=True)


# -- 7. swap ---------------------------------------------------------------------------


def _settled(supervisor: Supervisor, org: str, app_id: str, timeout: float) -> None:
    """Wait while the instance starts, restarts after a crash or is being updated."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slot = supervisor.lookup(org, app_id)
        if slot is None or slot.state not in (State.LOADING, State.UPDATING):
            return
        time.sleep(0.05)


def _update_to(env: InstallEnv, org: str, spec: DeploySpec, timeout: float) -> None:
    """``supervisor.update`` to ``spec``, once the instance accepts an update (one that
    is starting or crash-looping is waited for)."""
    supervisor = env.require_supervisor()
    deadline = time.monotonic() + timeout
    while True:
        _settled(supervisor, org, spec.app_id, max(0.0, deadline - time.monotonic()))
        try:
            env.run(supervisor.update(org, spec.app_id, spec))
            return
        except IllegalTransitionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # it crashed and is restarting meanwhile: wait again


def _same(slot: Any, spec: DeploySpec) -> bool:
    return bool(
        slot.version == spec.version
        and slot.code_dir == spec.code_dir
        and slot.env_dir == spec.env_dir
        and tuple(slot.grants) == tuple(spec.grants)
    )


def swap(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org = ctx.params["org"]
    planned = _planned(ctx)
    if not planned.has_backend:
        ctx.progress(f"{planned.app_id}: frontend only, the shell serves the new version")
        return {"swapped": False}
    instance = ctx.outputs["resolve"]["instance"]
    tree, site_packages, _key = _materialize(env, planned)  # (unless released meanwhile)
    spec = DeploySpec.from_manifest(
        planned.manifest,
        tree,
        org=org,
        env_dir=site_packages,
        trusted=bool(instance["trusted"]),
        grants=ctx.outputs["consent"]["grants"],
        idle_timeout_s=instance["idle_timeout_s"],
    )
    supervisor = env.require_supervisor()
    slot = supervisor.lookup(org, planned.app_id)
    if slot is not None:
        # Again here: another organization may have joined a shared instance since step 1
        # (it consented to the old version's permissions, not to this one's).
        _check_single_org(slot, org, planned.app_id)
    if slot is not None and _same(slot, spec):
        ctx.progress(f"{planned.app_id}: instance already on {planned.version}")
        return {"swapped": True}
    try:
        _update_to(env, org, spec, env.config.health_timeout_s + _SETTLE_S)
    except ApprtError as exc:
        raise HealthCheckError(
            exc.problems, title=f"{planned.app_id} {planned.version} did not start"
        ) from None
    info = supervisor.get(org, planned.app_id)
    ctx.progress(
        f"{planned.app_id}: instance {info.id} now on {planned.version} ({info.state.value}; "
        f"was {instance['version']})"
    )
    return {"swapped": True}


def swap_back(ctx: StepContext) -> None:
    """Put the recorded old spec back on the instance, if it is not on it."""
    env = _env(ctx)
    org, app_id = ctx.params["org"], ctx.params["app"]
    instance = ctx.outputs.get("resolve", {}).get("instance")
    supervisor = env.supervisor
    if instance is None or supervisor is None:
        return
    slot = supervisor.lookup(org, app_id)
    if slot is None:
        return
    old = DeploySpec(
        app_id=app_id,
        version=instance["version"],
        code_dir=Path(instance["code_dir"]),
        entry=instance["entry"],
        org=org,
        tenancy=Tenancy(instance["tenancy"]),
        env_dir=Path(instance["env_dir"]) if instance["env_dir"] else None,
        resources=Resources.model_validate(instance["resources"]),
        trusted=bool(instance["trusted"]),
        grants=tuple(instance["grants"]),
        idle_timeout_s=instance["idle_timeout_s"],
    )
    _settled(supervisor, org, app_id, _SETTLE_S)
    if not _same(slot, old):
        _update_to(env, org, old, _SETTLE_S)
        if slot.state is not State.RUNNING and instance["state"] == State.RUNNING.value:
            env.run(supervisor.activate(org, app_id))  # it served before the update: it serves
        ctx.progress(f"{app_id}: instance back on {old.version} ({slot.state.value})")
    _restore_backup(ctx, env)


def _restore_backup(ctx: StepContext, env: InstallEnv) -> None:
    """The state back to the backup taken before the swap, once the old version is back
    (the new one, its upgrade hook or its start-up may have changed it; nothing else
    could: the route was closed before the backup)."""
    org, app_id = ctx.params["org"], ctx.params["app"]
    name = ctx.outputs.get("backup", {}).get("backup")
    if not name:
        return
    from apprt.services import backup

    with session_scope(env.sessions) as session:
        path = backup.backup_path(org, app_id, name, data_dir=env.settings.data_dir)
        result = backup.restore(session, org, app_id, path=path, data_dir=env.settings.data_dir)
    ctx.progress(f"{app_id}: state restored from {name} ({result.keys} keys)")


# -- 8. upgrade hook -------------------------------------------------------------------


def run_upgrade_hook(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org = ctx.params["org"]
    planned = _planned(ctx)
    backend = planned.manifest.backend
    hook = backend.hooks.upgrade if backend is not None else None
    if not hook:
        ctx.progress(f"{planned.app_id} {planned.version} declares no upgrade hook")
        return {"hook": None, "ran": False}
    previous = _previous(ctx)["version"]
    context = {
        "event": "upgrade",
        "org": org,
        "app": planned.app_id,
        "version": planned.version,
        "previous_version": previous,
    }
    result = call_app_hook(env, org, planned.app_id, planned.version, hook, "upgrade", context)
    ctx.progress(
        f"{planned.app_id}: upgrade hook {hook} ran ({previous} -> {planned.version})",
        hook=hook,
        result=result,
    )
    return {"hook": hook, "ran": True}


# -- 9. health -------------------------------------------------------------------------


def check_update_health(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    planned = _planned(ctx)
    if not planned.has_backend:
        assert planned.manifest.frontend is not None
        entry = (
            env.artifacts.path_for(planned.sha256) / "frontend" / planned.manifest.frontend.entry
        )
        if not entry.is_file():
            raise HealthCheckError.one(
                f"{planned.app_id}'s frontend entry {planned.manifest.frontend.entry} is missing",
                location="frontend.entry",
            )
        ctx.progress(f"{planned.app_id}: frontend entry present")
        return {"healthy": 0.0}
    seconds = wait_healthy(env, ctx.params["org"], planned.manifest, env.config.health_timeout_s)
    ctx.progress(f"{planned.app_id} {planned.version}: healthy in {seconds:.2f} s")
    return {"healthy": round(seconds, 3)}


# -- 10. activate ----------------------------------------------------------------------


def activate_update(ctx: StepContext) -> dict[str, Any]:
    env = _env(ctx)
    org = ctx.params["org"]
    planned = _planned(ctx)
    previous = _previous(ctx)
    consent = ctx.outputs["consent"]
    with _session(ctx) as session:
        row = _row(session, ctx)
        row.version = planned.version
        row.package_sha256 = planned.sha256
        row.env_key = ctx.outputs["deploy"]["env_key"]
        row.grants = consent["grants"]
        row.config = consent["config"]
        row.dependencies = dict(planned.manifest.dependencies)
        row.memory_mb = planned.memory_mb
        row.storage_mb = planned.storage_mb
        row.job_id = ctx.job_id
        session.flush()
        env.index.set_active(org, row)
        url = row.url
    open_routes(env, org, [planned.app_id], live=True)
    if previous["package_sha256"] != planned.sha256:
        try:
            release_artifacts(env, ctx, previous["package_sha256"])
        except Exception:  # the update is done; the garbage collector retries at start
            log.exception("install.update_release_failed", job_id=ctx.job_id)
    shutil.rmtree(env.staging(ctx.job_id), ignore_errors=True)
    ctx.progress(
        f"{planned.app_id} {previous['version']} -> {planned.version} is live at {url}", url=url
    )
    return {
        "url": url,
        "from_version": previous["version"],
        "version": planned.version,
        "backup": ctx.outputs["backup"]["backup"],
    }


def deactivate_update(ctx: StepContext) -> None:
    env = _env(ctx)
    previous = ctx.outputs.get("resolve", {}).get("previous")
    if previous is None:
        return
    open_routes(env, ctx.params["org"], [ctx.params["app"]], live=False)
    with _session(ctx) as session:
        organization = session.get(Organization, int(ctx.params["org_id"]))
        if organization is None:
            return
        row = find_installation(session, organization, ctx.params["app"])
        if row is None or row.job_id != ctx.job_id:
            return
        for name in _ROW_FIELDS:
            if name != "job_id":
                setattr(row, name, previous[name])
        session.flush()
        env.index.set_active(ctx.params["org"], row)


UPDATE_KIND = JobKind(
    UPDATE,
    [
        Step("resolve", "Version resolution", resolve_update, unmark),
        Step("compatibility", "Compatibility check", check_update_compatibility),
        Step("consent", "Consent & settings", check_consent),
        Step(
            "download", "Package download & verification", download_update, discard_update_download
        ),
        Step("deploy", "Unpack & environment", deploy_update, undeploy_update),
        Step("backup", "Route closed, state backup", backup_state, reopen_route),
        Step("swap", "Version swap", swap, swap_back),
        Step("hook", "Upgrade hook", run_upgrade_hook),
        Step("health", "Health check", check_update_health),
        Step("activate", "Activation", activate_update, deactivate_update),
    ],
)
