"""Downloading packages the way any installer should: through a stock TUF client.

Every package an installation uses is fetched by :class:`tuf.ngclient.Updater`, even
from this platform's own registry: the updater walks the root chain from a trusted
root, checks the timestamp, snapshot, targets and hash-bin signatures, versions and
expiries, then downloads ``targets/<app id>/<sha256>.<version>.apppkg`` and refuses
any byte beyond the signed length or a wrong sha256 before the file is written. The
installer then also checks that the signed sha256 is the one the registry's database
named for that version (what the resolver planned with).

Trust: the local repository's ``1.root.json`` (read from the database) when
``APPRT_INSTALL_TUF_ROOT`` is not set; a remote registry needs its root file there.
Client state (trusted metadata) lives in ``<data dir>/install/tuf/<root digest>/``,
one directory per repository, so rollback protection holds across restarts.

The transport is a small httpx :class:`FetcherInterface` (timeouts, streaming).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
from tuf.api.exceptions import DownloadError, DownloadHTTPError, RepositoryError
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from apprt.install.errors import VerificationError

#: Bytes per read of a download.
CHUNK = 256 * 1024

# One refresh/download at a time per client state directory: ngclient writes its
# trusted metadata files there.
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


class HttpxFetcher(FetcherInterface):
    """ngclient's transport over httpx: one client, streamed bodies, HTTP errors typed."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _fetch(self, url: str) -> Iterator[bytes]:
        request = self.client.build_request("GET", url)
        try:
            response = self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise DownloadError(f"cannot fetch {url}: {exc}") from exc
        if response.status_code != 200:
            response.close()
            raise DownloadHTTPError(f"HTTP {response.status_code} for {url}", response.status_code)
        return self._chunks(response, url)

    @staticmethod
    def _chunks(response: httpx.Response, url: str) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(CHUNK)
        except httpx.HTTPError as exc:
            raise DownloadError(f"download of {url} broke off: {exc}") from exc
        finally:
            response.close()


class PackageDownloader:
    """Verified downloads of packages from one registry (one TUF repository)."""

    def __init__(
        self, *, base_url: str, trusted_root: bytes, state_root: Path, timeout: float = 60.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.trusted_root = trusted_root
        digest = hashlib.sha256(trusted_root).hexdigest()[:16]
        self.metadata_dir = state_root / digest
        self.timeout = timeout

    def _updater(self, client: httpx.Client, target_dir: Path) -> Updater:
        return Updater(
            metadata_dir=str(self.metadata_dir),
            metadata_base_url=f"{self.base_url}/tuf/",
            target_dir=str(target_dir),
            target_base_url=f"{self.base_url}/tuf/targets/",
            fetcher=HttpxFetcher(client),
            bootstrap=self.trusted_root,
        )

    def download(
        self,
        wanted: list[tuple[str, str, str]],
        target_dir: Path,
        local: dict[str, Path] | None = None,
    ) -> dict[str, Path]:
        """Fetch and verify every ``(app id, version, sha256)``; their files by app id.

        Files are named ``<sha256>.apppkg`` in ``target_dir``; one already there and
        matching the signed length and hash is not fetched again (a resumed job).
        ``local`` names copies already on this host (the blob store's file of the
        sha256): verified against the signed length and hash like any cached target,
        and used without a download; one that does not verify is refused (a corrupt
        or tampered store), never silently replaced.
        """
        from apprt.registry.tuf.repository import target_path

        self.metadata_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target_dir.mkdir(parents=True, exist_ok=True)
        found: dict[str, Path] = {}
        with (
            _lock_for(self.metadata_dir),
            httpx.Client(timeout=self.timeout, follow_redirects=False) as client,
        ):
            updater = self._updater(client, target_dir)
            try:
                updater.refresh()
            except (RepositoryError, DownloadError) as exc:
                raise VerificationError.one(
                    f"the registry's TUF metadata at {self.base_url}/tuf/ did not verify: "
                    f"{type(exc).__name__}: {exc}",
                    location="registry",
                    hint="the registry or the path to it is compromised, or its metadata "
                    "expired; `apprt registry tuf status` on the registry host tells which",
                ) from None
            for app_id, version, sha256 in wanted:
                path = target_path(app_id, version)
                try:
                    info = updater.get_targetinfo(path)
                except (RepositoryError, DownloadError) as exc:
                    raise VerificationError.one(
                        f"the TUF delegation for {path} did not verify: {exc}",
                        location=f"{app_id}@{version}",
                        hint="the registry's metadata is inconsistent; report it to its operator",
                    ) from None
                if info is None:
                    raise VerificationError.one(
                        f"{app_id} {version} is not a signed target of the registry",
                        location=f"{app_id}@{version}",
                        hint="it may have been unpublished meanwhile; resolve again",
                    )
                signed = info.hashes.get("sha256")
                if signed != sha256:
                    raise VerificationError.one(
                        f"the registry lists {app_id} {version} as sha256 {sha256[:12]}..., but "
                        f"its TUF metadata signs {str(signed)[:12]}...",
                        location=f"{app_id}@{version}",
                        hint="the registry's database and its signed metadata disagree; "
                        "report it to the registry's operator",
                    )
                file = target_dir / f"{sha256}.apppkg"
                stored = (local or {}).get(app_id)
                try:
                    if stored is not None and stored.exists():
                        if updater.find_cached_target(info, str(stored)) is None:
                            raise VerificationError.one(
                                f"the stored copy of {app_id} {version} ({stored}) does not "
                                "match the length and sha256 the registry signed",
                                location=f"{app_id}@{version}",
                                hint="the blob store is corrupt or was tampered with; remove "
                                "the file so that it is downloaded again, and investigate",
                            )
                        found[app_id] = stored
                        continue
                    cached = updater.find_cached_target(info, str(file))
                    found[app_id] = Path(cached or updater.download_target(info, str(file)))
                except (RepositoryError, DownloadError) as exc:
                    raise VerificationError.one(
                        f"{app_id} {version} did not verify: {type(exc).__name__}: {exc}",
                        location=f"{app_id}@{version}",
                        hint="the package served is not the one the registry signed; "
                        "nothing was installed",
                    ) from None
        return found
