"""``archive``: the upload is a well-formed, safe ``.apppkg`` whose digests all match.

:func:`apprt.package.read_package` streams the stored blob once and refuses
anything unsafe (paths, links, limits, compression bombs) or inconsistent (a file
whose sha256 or size differs from the MANIFEST).
"""

from __future__ import annotations

from dataclasses import replace

from apprt.errors import PackageError, Problem
from apprt.package import read_package
from apprt.registry.checks import CheckContext, CheckOutcome, failed, passed

NAME = "archive"
#: How problems name the uploaded archive (never the server's storage path).
LABEL = "upload"


def relabel(problems: list[Problem], stored_as: str) -> list[Problem]:
    """``problems`` with the blob's storage path replaced by :data:`LABEL`."""
    if not stored_as:
        return problems
    return [replace(p, file=LABEL) if p.file == stored_as else p for p in problems]


def run(ctx: CheckContext) -> CheckOutcome:
    try:
        with ctx.blob_store.open(ctx.digest) as stream:
            stored_as = str(getattr(stream, "name", ""))
            info = read_package(stream)
    except PackageError as exc:
        outcome = failed("not a valid, safe .apppkg", relabel(exc.problems, stored_as))
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
