"""``immutability``: a published ``id@version`` is never replaced.

* the same ``id@version`` with identical bytes (same sha256) is an idempotent
  success: the existing version is returned and nothing else runs;
* with different bytes it is a 409 refusal, and so is a version that was
  unpublished (a version number is never reused);
* a new version must be greater than the newest installable one, unless the upload
  is flagged ``backport`` (a fix on an older line, e.g. 1.4.3 after 2.0.0).

A version rejected earlier (by the checks or a reviewer) may be uploaded again.
"""

from __future__ import annotations

from apprt.errors import Problem
from apprt.registry.checks import CheckContext, CheckOutcome, failed, passed
from apprt.registry.models import INSTALLABLE_STATES, VersionState
from apprt.registry.services.queries import find_version, newest, semver, versions_of

NAME = "immutability"


def _conflict(summary: str, problem: Problem) -> CheckOutcome:
    outcome = failed(summary, [problem], http_status=409)
    outcome.stop = True
    return outcome


def run(ctx: CheckContext) -> CheckOutcome:
    manifest = ctx.manifest
    assert manifest is not None
    where = f"{manifest.id}@{manifest.version}"
    if ctx.app is None:
        return passed(f"{manifest.id} is a new app")
    row = find_version(ctx.session, ctx.app, manifest.version)
    if row is not None and row.state == VersionState.UNPUBLISHED:
        return _conflict(
            f"{where} was unpublished",
            Problem(
                f"{where} was unpublished; a version number is never reused",
                file="app.toml",
                location="version",
                hint="bump the version and upload again",
            ),
        )
    if row is not None and row.state != VersionState.REJECTED:
        if row.sha256 == ctx.digest:
            ctx.existing = row
            outcome = passed(
                f"identical to the existing {where} ({row.state.value}); nothing new",
                idempotent=True,
                version_state=row.state.value,
            )
            outcome.stop = True
            return outcome
        return _conflict(
            f"{where} exists with other content",
            Problem(
                f"{where} already exists ({row.state.value}) with different content "
                f"(sha256 {row.sha256}); published versions are immutable",
                file="app.toml",
                location="version",
                hint="bump the version (e.g. the patch number) and upload again",
            ),
        )
    ctx.rejected = row
    this = manifest.semver
    installable = versions_of(ctx.session, ctx.app, INSTALLABLE_STATES)
    latest = newest(installable)
    older = [v for v in installable if semver(v) < this]
    ctx.previous = newest(older) if ctx.backport else latest
    if latest is not None and this <= semver(latest) and not ctx.backport:
        return _conflict(
            f"{manifest.version} is not newer than {latest.version}",
            Problem(
                f"{where} is not greater than the newest published version {latest.version}",
                file="app.toml",
                location="version",
                hint=f"use a version above {latest.version}, or upload with --backport if "
                "this is a fix for an older release line",
            ),
        )
    if ctx.backport:
        return passed(
            f"backport below {latest.version}" if latest else "backport (no newer version)",
            backport=True,
        )
    return passed(
        f"new version above {latest.version}" if latest else "first version of the app",
    )
