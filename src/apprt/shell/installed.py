"""What the shell knows of installed apps: their manifests, trees and verified files.

:func:`installed_apps` lists an organization's active installations (from the install
engine, :mod:`apprt.install`) with the content-addressed tree each runs from
(``<data dir>/install/apps/<package sha256>/``) and the permissions granted at install.

:class:`PackageIndex` holds, per package digest, the manifest and the sha256 of every
file as the *package* says (its MANIFEST, checked while streaming the blob), never as
the tree on disk says: the shell puts these digests in the import map's ``integrity``,
so a file changed on disk after installation is refused by the browser.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from apprt.accounts.models import Organization
from apprt.blobs.store import BlobStore
from apprt.errors import ApprtError
from apprt.install.models import InstallState
from apprt.install.services import installations_of
from apprt.manifest import Manifest, parse_manifest
from apprt.manifest.loader import load_manifest
from apprt.package import FileEntry, read_package

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class VerifiedPackage:
    """A package as its blob proves it: the manifest and every file's digest."""

    manifest: Manifest
    files: dict[str, FileEntry]


@dataclass(frozen=True)
class InstalledApp:
    """One app installed in one organization, as the shell needs it."""

    org: str
    app_id: str
    version: str
    digest: str  # sha256 of the package: names its blob and its unpacked tree
    tree: Path
    manifest: Manifest
    #: The verified package; None when its blob is not in the store (nothing proves
    #: what the tree should hold, so its frontend is not served).
    package: VerifiedPackage | None
    grants: tuple[str, ...]
    state: str  # the runtime's state of its backend, or "frontend only"


class PackageIndex:
    """Verified packages by digest, each read from the blob store once (an LRU)."""

    def __init__(self, blobs: BlobStore, size: int = 256) -> None:
        self.blobs = blobs
        self._lock = threading.Lock()
        self._items: OrderedDict[str, VerifiedPackage] = OrderedDict()
        self._size = size

    def get(self, digest: str) -> VerifiedPackage | None:
        with self._lock:
            found = self._items.get(digest)
            if found is not None:
                self._items.move_to_end(digest)
                return found
        if not self.blobs.exists(digest):
            return None
        try:
            with self.blobs.open(digest) as source:
                info = read_package(source)
            manifest = parse_manifest(info.manifest_text)
        except ApprtError as exc:
            log.error("shell.package_unreadable", digest=digest, error=str(exc))
            return None
        package = VerifiedPackage(manifest, {f.path: f for f in info.files})
        with self._lock:
            self._items[digest] = package
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return package

    def files(self, digest: str) -> dict[str, FileEntry] | None:
        package = self.get(digest)
        return package.files if package is not None else None


def _runtime_state(state: Any, org: str, app_id: str, has_backend: bool) -> str:
    if not has_backend:
        return "frontend only"
    supervisor = getattr(state, "supervisor", None)
    slot = supervisor.lookup(org, app_id) if supervisor is not None else None
    return str(slot.state.value) if slot is not None else "not deployed"


def installed_apps(
    state: Any, session: Session, org: str, index: PackageIndex
) -> list[InstalledApp]:
    """The apps active in ``org`` (the caller checked the user may see it)."""
    env = getattr(state, "install", None)
    organization = session.scalars(
        select(Organization).where(Organization.slug == org)
    ).one_or_none()
    if env is None or organization is None:
        return []
    apps = []
    for row in installations_of(session, organization):
        if row.state is not InstallState.ACTIVE:
            continue
        tree: Path = env.artifacts.path_for(row.package_sha256)
        package = index.get(row.package_sha256)
        manifest = package.manifest if package is not None else _tree_manifest(tree)
        if manifest is None:
            continue
        apps.append(
            InstalledApp(
                org=org,
                app_id=row.app_id,
                version=row.version,
                digest=row.package_sha256,
                tree=tree,
                manifest=manifest,
                package=package,
                grants=tuple(row.grants),
                state=_runtime_state(state, org, row.app_id, row.has_backend),
            )
        )
    return apps


def _tree_manifest(tree: Path) -> Manifest | None:
    """For display only, when the package itself cannot be read."""
    try:
        return load_manifest(tree)
    except (ApprtError, OSError) as exc:
        log.warning("shell.manifest_unreadable", tree=str(tree), error=str(exc))
        return None


def tree_of(state: Any, digest: str) -> Path | None:
    """The unpacked tree of package ``digest``, if the install engine has one."""
    env = getattr(state, "install", None)
    if env is None:
        return None
    tree: Path = env.artifacts.path_for(digest)
    return tree if tree.is_dir() else None
