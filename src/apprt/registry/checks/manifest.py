"""``manifest``: ``app.toml`` follows the schema and the files it points at exist.

The same checks as ``apprt app validate FILE.apppkg``: the schema
(:func:`apprt.manifest.parse_manifest`) and the manifest-to-files rules with the
packaged ones (one wheel per pinned requirement) from
:func:`apprt.package.checks.check_app_files`.
"""

from __future__ import annotations

from apprt.errors import ManifestError
from apprt.manifest import parse_manifest
from apprt.package.checks import check_app_files
from apprt.registry.checks import CheckContext, CheckOutcome, failed, passed

NAME = "manifest"


def run(ctx: CheckContext) -> CheckOutcome:
    assert ctx.info is not None
    try:
        manifest = parse_manifest(ctx.info.manifest_text)
    except ManifestError as exc:
        outcome = failed("app.toml does not follow the schema", exc.problems)
        outcome.stop = True
        return outcome
    problems = check_app_files(manifest, [f.path for f in ctx.info.files], packaged=True)
    if problems:
        outcome = failed("app.toml points at files the package lacks", problems)
        outcome.stop = True
        return outcome
    ctx.manifest = manifest
    return passed(f"{manifest.id}@{manifest.version}", app_id=manifest.id, version=manifest.version)
