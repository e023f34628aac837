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

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'apprt.db'}"

    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin.token"
