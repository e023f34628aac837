"""The validation checks run on every upload, one small module per check.

Each module exposes ``NAME`` and ``run(ctx: CheckContext) -> CheckOutcome``. The
pipeline (:mod:`apprt.registry.services.uploads`) runs them in the order of
:data:`apprt.registry.checks.pipeline.PIPELINE` and records every outcome; a check
that needs what an earlier, failed check would have produced is recorded as
``skipped``.

====================  =====================================================  ========
check                 what                                                   failing
====================  =====================================================  ========
``archive``           gzip/tar safety, paths, limits, every sha256 and size  fail
``manifest``          app.toml schema, files it points at, vendored wheels   fail
``publisher``         manifest publisher = uploader, token scope, app owner  fail 403
``signature``         signed by an active key of the publisher               fail
``immutability``      id@version never replaced; newer than the newest       fail 409
``compatibility``     platform range holds this platform; deps resolvable    fail
``security``          bandit (HIGH fails), risky imports (warn, review)      fail/warn
``secrets``           private keys, cloud credentials, tokens in any file    fail
``frontend``          no eval / new Function; frontend size budget           fail
``quality``           README, icon, package size budget                      warn
``permissions``       new and sensitive permissions (sends to review)        warn
====================  =====================================================  ========
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from apprt.blobs import BlobStore
from apprt.errors import Problem
from apprt.manifest import Manifest
from apprt.package import PackageInfo
from apprt.registry.config import RegistryConfig
from apprt.registry.models import AppVersion, CheckStatus, Publisher, RegistryApp


@dataclass
class CheckOutcome:
    """What one check found."""

    status: CheckStatus
    summary: str = ""
    problems: list[Problem] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    #: Send the version to manual review even though nothing failed.
    needs_review: bool = False
    #: HTTP status of the refusal when this check fails (403, 409; else 422).
    http_status: int = 422
    #: Stop the pipeline after this check (the rest is recorded as skipped).
    stop: bool = False


def passed(summary: str, **details: Any) -> CheckOutcome:
    return CheckOutcome(CheckStatus.PASS, summary, details=details)


def failed(
    summary: str, problems: list[Problem], *, http_status: int = 422, **details: Any
) -> CheckOutcome:
    return CheckOutcome(
        CheckStatus.FAIL, summary, problems, details=details, http_status=http_status
    )


@dataclass
class CheckContext:
    """Everything a check may look at; earlier checks fill the optional fields."""

    session: Session
    config: RegistryConfig
    blob_store: BlobStore
    publisher: Publisher
    scopes: tuple[str, ...]
    digest: str
    size: int
    backport: bool
    workdir: Path
    info: PackageInfo | None = None
    manifest: Manifest | None = None
    #: The package extracted (after immutability passed), for content checks.
    root: Path | None = None
    #: The registry's app row, when the app id exists already.
    app: RegistryApp | None = None
    #: A version with the same id@version and identical bytes (idempotent upload).
    existing: AppVersion | None = None
    #: An earlier, rejected version row with this id@version, to be reused.
    rejected: AppVersion | None = None
    #: The version this one follows (for the permission review), if any.
    previous: AppVersion | None = None


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[CheckContext], CheckOutcome]
    #: Which context fields must be set for the check to run.
    needs: tuple[str, ...] = ()


def timed(check: Check, ctx: CheckContext) -> tuple[CheckOutcome, float]:
    start = time.perf_counter()
    outcome = check.run(ctx)
    return outcome, (time.perf_counter() - start) * 1000


def text_files(root: Path, *, prefix: str = "", max_size: int = 8 << 20) -> list[tuple[str, str]]:
    """``(package path, text)`` of every file under ``root/prefix`` that looks like text.

    A file is text when its first 8 KiB hold no NUL byte and it decodes as UTF-8
    (undecodable bytes replaced); larger than ``max_size`` files are read up to it.
    """
    base = root / prefix if prefix else root
    out: list[tuple[str, str]] = []
    if not base.is_dir():
        return out
    for path in sorted(base.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as fh:
            data = fh.read(max_size)
        if b"\0" in data[:8192]:
            continue
        out.append((path.relative_to(root).as_posix(), data.decode("utf-8", "replace")))
    return out


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1
