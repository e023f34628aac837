"""One settings object for the whole platform.

Every field can be set from the environment with the ``APPRT_`` prefix, e.g.
``APPRT_DATA_DIR=/var/lib/apprt`` or ``APPRT_DATABASE_URL=postgresql+psycopg://...``.
Paths that are not given are derived from the data directory, so pointing
``APPRT_DATA_DIR`` somewhere else moves everything (database, blobs, tokens)::

    >>> from apprt.settings import Settings
    >>> s = Settings(data_dir="/tmp/apprt-doc")
    >>> s.resolved_database_url()
    'sqlite:////tmp/apprt-doc/apprt.db'
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "apprt"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPRT_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to a SQLite file in the data dir."
    )
    blob_dir: Path | None = Field(
        default=None, description="Local blob store root; defaults to <data_dir>/blobs."
    )
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: str | None = Field(
        default=None, description="Preset the platform admin's API token (else one is generated)."
    )
    log_level: str = "info"
    session_ttl_hours: float = Field(
        12, gt=0, description="Lifetime of a browser/CLI session from password login."
    )

    # -- runtime: supervisor, hibernation, logs (apprt.runtime) --
    runtime_driver: str = Field(
        "bwrap", description="Sandbox driver: bwrap (default on Linux) or process (development)."
    )
    allow_untrusted_process_driver: bool = Field(
        False, description="Let the process driver run apps not marked trusted (unsafe)."
    )
    runtime_run_dir: Path | None = Field(
        default=None,
        description="Where instances' Unix sockets live; defaults to <data_dir>/run "
        "(or a short directory under /tmp when that path is too long for a socket).",
    )
    runtime_stop_on_shutdown: bool = Field(
        False, description="Stop every sandbox when the platform stops (else they are re-adopted)."
    )
    idle_timeout_s: float = Field(
        300, ge=0, description="Suspend an instance after this long without a request; 0: never."
    )
    crash_loop_count: int = Field(
        5, ge=1, description="Crashes within the window that mean Failed."
    )
    crash_loop_window_s: float = Field(60, gt=0, description="Window of the crash loop count.")
    restart_backoff_s: float = Field(0.1, ge=0, description="First restart delay after a crash.")
    restart_backoff_max_s: float = Field(10, ge=0, description="Longest restart delay.")
    runtime_watch_interval_s: float = Field(
        0.25, gt=0, description="How often the supervisor checks instances (exit, idle, logs)."
    )
    instance_log_max_bytes: int = Field(
        1_048_576, ge=4096, description="Size of an instance's log file before it is rotated."
    )
    instance_log_generations: int = Field(3, ge=1, description="Rotated log files kept.")
    # -- gateway (apprt.gateway) --
    gateway_max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=0, description="Largest request body the gateway forwards (413)."
    )
    gateway_rate_per_s: float = Field(
        1000, gt=0, description="Requests per second per app and org (token bucket; 429)."
    )
    gateway_rate_burst: int = Field(2000, ge=1, description="Token bucket size of that limit.")
    # -- services: the platform API apps call on platform.sock (apprt.services) --
    services_rate_per_s: float = Field(
        200, gt=0, description="Platform API calls per second per app and org (token bucket; 429)."
    )
    services_rate_burst: int = Field(400, ge=1, description="Token bucket size of that limit.")
    state_default_storage_mb: int = Field(
        10, ge=1, description="State quota (MiB) of an app whose manifest has storage_mb = 0."
    )
    state_max_keys: int = Field(100_000, ge=1, description="State keys per app and organization.")
    audit_retention_days: float = Field(
        90, gt=0, description="Platform API audit rows older than this are deleted."
    )
    backup_keep: int = Field(
        20, ge=1, description="State backups kept per app and organization (oldest go first)."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'apprt.db'}"

    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin.token"
