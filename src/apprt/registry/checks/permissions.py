"""``permissions``: what the version may do that the previous one could not.

Lists the permissions that are new since the previous version (the newest
installable one; for a backport, the newest below it), those removed, and the
sensitive ones (``apprt.manifest.permissions``: data-room writes, companion
messages, network). New or sensitive permissions send the version to manual
review (status ``warn``); the first version of an app has only new permissions,
so it is always reviewed unless it asks for none.
"""

from __future__ import annotations

from apprt.errors import Problem
from apprt.registry.checks import CheckContext, CheckOutcome, passed
from apprt.registry.models import CheckStatus

NAME = "permissions"


def run(ctx: CheckContext) -> CheckOutcome:
    manifest = ctx.manifest
    assert manifest is not None
    current = {r.permission: r for r in manifest.permissions}
    previous_version = ctx.previous.version if ctx.previous is not None else None
    before: set[str] = set(ctx.previous.permissions) if ctx.previous is not None else set()
    new = sorted(set(current) - before)
    removed = sorted(before - set(current))
    sensitive = sorted(str(p) for p in manifest.sensitive_permissions)
    details = {
        "previous_version": previous_version,
        "permissions": sorted(current),
        "new": new,
        "removed": removed,
        "sensitive": sensitive,
    }
    problems = [
        Problem(
            f"new permission {p!r}"
            + (f" (reason given: {current[p].reason})" if current[p].reason else ""),
            file="app.toml",
            location="permissions",
            hint="a reviewer checks new permissions before the version is published",
        )
        for p in new
    ] + [
        Problem(
            f"sensitive permission {p!r}: {current[p].parsed.description}",
            file="app.toml",
            location="permissions",
            hint="a reviewer checks sensitive permissions before every publication",
        )
        for p in sensitive
    ]
    if problems:
        since = f"since {previous_version}" if previous_version else "(first version)"
        return CheckOutcome(
            CheckStatus.WARN,
            f"{len(new)} new {since}, {len(sensitive)} sensitive: review needed",
            problems,
            details=details,
            needs_review=True,
        )
    return passed("no new or sensitive permission", **details)
