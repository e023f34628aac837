"""``compatibility``: the app can run here and its dependencies can be installed.

* the manifest's ``platform`` range holds this platform's API version
  (:data:`apprt.PLATFORM_API_VERSION`);
* the app's ``dependencies`` resolve with :func:`apprt.resolve.resolve` against the
  registry's installable versions (:class:`RegistryIndex`), together with the
  uploaded version itself (so a dependency requiring a range of this app is
  checked too).
"""

from __future__ import annotations

from apprt import PLATFORM_API_VERSION
from apprt.errors import Problem
from apprt.registry.checks import CheckContext, CheckOutcome, failed, passed
from apprt.registry.services.queries import RegistryIndex
from apprt.resolve import Candidate, ResolutionError, resolve
from apprt.versioning import parse_range

NAME = "compatibility"


def run(ctx: CheckContext) -> CheckOutcome:
    manifest = ctx.manifest
    assert manifest is not None
    if not parse_range(manifest.platform).contains(PLATFORM_API_VERSION):
        return failed(
            f"platform range {manifest.platform!r} excludes this platform",
            [
                Problem(
                    f"platform = {manifest.platform!r} does not include the platform API "
                    f"version {PLATFORM_API_VERSION}",
                    file="app.toml",
                    location="platform",
                    hint=f"widen the range to include {PLATFORM_API_VERSION} (e.g. "
                    f"'^{PLATFORM_API_VERSION.split('.')[0]}.0') once the app works with it",
                )
            ],
        )
    if not manifest.dependencies:
        return passed(f"runs on platform API {PLATFORM_API_VERSION}; no dependencies")
    this = Candidate(manifest.id, manifest.version, dict(manifest.dependencies), manifest.platform)
    try:
        plan = resolve(
            {manifest.id: f"={manifest.version}"},
            RegistryIndex(ctx.session, extra=[this]),
            platform_version=PLATFORM_API_VERSION,
        )
    except ResolutionError as exc:
        problems = [
            Problem(
                p.reason,
                file=p.file or "app.toml",
                location=p.location or "dependencies",
                hint=p.hint or "publish the dependency first, or relax the range",
            )
            for p in exc.problems
        ]
        return failed("the dependencies cannot be resolved", problems)
    resolved = {c.app_id: c.version for c in plan.resolved.values() if c.app_id != manifest.id}
    return passed(
        "dependencies resolve: " + ", ".join(f"{a}@{v}" for a, v in sorted(resolved.items())),
        resolved=resolved,
    )
