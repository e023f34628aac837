"""``archive``: the upload is a well-formed, safe ``.apppkg`` whose digests all match.

:func:`apprt.package.read_package` streams the stored blob once and refuses
anything unsafe (paths, links, limits, compression bombs) or inconsistent (a file
whose sha256 or size differs from the MANIFEST).
"""

from __future__ import annotations

from apprt.errors import PackageError
from apprt.package import read_package
from apprt.registry.checks import CheckContext, CheckOutcome, failed, passed

NAME = "archive"


def run(ctx: CheckContext) -> CheckOutcome:
    try:
        with ctx.blob_store.open(ctx.digest) as stream:
            info = read_package(stream)
    except PackageError as exc:
        outcome = failed("not a valid, safe .apppkg", exc.problems)
        outcome.stop = True
        return outcome
    if info.archive_sha256 != ctx.digest:  # the blob changed under us: never trust it
        outcome = failed(
            "the stored package does not match its digest",
            [
                PackageError.single(
                    "the stored bytes do not hash to the upload's sha256",
                    hint="upload the package again",
                ).problems[0]
            ],
        )
        outcome.stop = True
        return outcome
    ctx.info = info
    return passed(
        f"{len(info.files)} files, every sha256 verified",
        files=len(info.files),
        content_bytes=info.total_size,
        manifest_digest=info.manifest_digest,
    )
