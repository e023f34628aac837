"""The install engine's knobs, from ``APPRT_INSTALL_*`` environment variables.

=========================================  =============================  =====================
variable                                   default                        meaning
=========================================  =============================  =====================
``APPRT_INSTALL_REGISTRY_URL``             this platform (loopback)       where packages and
                                                                          TUF metadata come
                                                                          from
``APPRT_INSTALL_TUF_ROOT``                 the local repository's         trusted root for a
                                           ``1.root.json``                remote registry
``APPRT_INSTALL_HEALTH_TIMEOUT_S``         15                             app must be healthy
                                                                          within this
``APPRT_INSTALL_RETENTION_DAYS``           30                             how long uninstalled
                                                                          apps' data is kept
``APPRT_INSTALL_MIN_FREE_MB``              64                             refuse to install
                                                                          below this free disk
``APPRT_INSTALL_UV_CACHE``                 ``<data dir>/install/uv-cache`` uv's wheel cache
                                                                          (hard links)
``APPRT_INSTALL_DOWNLOAD_TIMEOUT_S``       60                             per HTTP request
=========================================  =============================  =====================

The component's lifespan puts one :class:`InstallConfig` on ``app.state.install_config``
unless one is already there (tests set their own).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from apprt.settings import Settings


class InstallConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPRT_INSTALL_", extra="ignore")

    registry_url: str | None = Field(
        None, description="Registry base URL; None: this platform on its loopback address."
    )
    tuf_root: Path | None = Field(
        None, description="Trusted TUF root (1.root.json) of a remote registry."
    )
    health_timeout_s: float = Field(15.0, gt=0)
    retention_days: float = Field(30.0, ge=0)
    min_free_mb: int = Field(64, ge=0)
    uv_cache: Path | None = None
    download_timeout_s: float = Field(60.0, gt=0)

    def resolved_registry_url(self, settings: Settings) -> str:
        if self.registry_url:
            return self.registry_url.rstrip("/")
        host = settings.host
        if host in ("0.0.0.0", "", "::"):  # noqa: S104 - reading a bind address
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{settings.port}"


def install_root(settings: Settings) -> Path:
    """Everything the install engine keeps: ``<data dir>/install``."""
    return settings.data_dir / "install"


def retained_root(settings: Settings) -> Path:
    """Archives of uninstalled apps' data: ``<data dir>/retained/<org>/<app>/``."""
    return settings.data_dir / "retained"
