"""The TUF repository's knobs, from ``APPRT_TUF_*`` environment variables.

=================================  =====================  ===================================
variable                           default                meaning
=================================  =====================  ===================================
``APPRT_TUF_KEY_DIR``              ``<data dir>/tuf-keys``  where key files live (0700)
``APPRT_TUF_ROOT_KEY``             ``<key dir>/root.key``   root's private key (may be absent:
                                                          offline)
``APPRT_TUF_TARGETS_KEY``          ``<key dir>/targets.key``  top-level targets' private key
                                                          (may be absent: offline)
``APPRT_TUF_ROOT_EXPIRY_DAYS``     365                    lifetime of a root version
``APPRT_TUF_TARGETS_EXPIRY_DAYS``  90                     lifetime of top-level targets
``APPRT_TUF_BINS_EXPIRY_DAYS``     7                      lifetime of a ``bins-*`` version
``APPRT_TUF_SNAPSHOT_EXPIRY_DAYS`` 7                      lifetime of a snapshot
``APPRT_TUF_TIMESTAMP_EXPIRY_DAYS`` 1                     lifetime of a timestamp
``APPRT_TUF_REFRESH_INTERVAL_S``   600                    how often the server looks for
                                                          metadata to re-sign
``APPRT_TUF_BIN_BITS``             4                      2^bits succinct hash bins (fixed at
                                                          bootstrap)
``APPRT_TUF_KEEP_VERSIONS``        20                     old versions kept per non-root role
=================================  =====================  ===================================

Online metadata (``bins-*``, snapshot, timestamp) is re-signed once less than half of
its lifetime is left; offline metadata (root, targets) too when its key file is
present, and otherwise a warning is logged from then on (see ``docs/tuf.md``).
Expiries may be fractional (tests use seconds' worth of a day).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from apprt.settings import Settings

ONLINE_ROLES = ("timestamp", "snapshot", "bins")
OFFLINE_ROLES = ("root", "targets")
KEY_ROLES = ("root", "targets", "bins", "snapshot", "timestamp")


class TufConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPRT_TUF_", extra="ignore")

    key_dir: Path | None = Field(None, description="Key files; default <data dir>/tuf-keys")
    root_key: Path | None = Field(None, description="Root key file; default <key dir>/root.key")
    targets_key: Path | None = Field(
        None, description="Top-level targets key file; default <key dir>/targets.key"
    )
    root_expiry_days: float = Field(365.0, gt=0)
    targets_expiry_days: float = Field(90.0, gt=0)
    bins_expiry_days: float = Field(7.0, gt=0)
    snapshot_expiry_days: float = Field(7.0, gt=0)
    timestamp_expiry_days: float = Field(1.0, gt=0)
    refresh_interval_s: float = Field(600.0, gt=0)
    bin_bits: int = Field(4, ge=0, le=16)
    keep_versions: int = Field(20, ge=2)

    def resolved_key_dir(self, settings: Settings) -> Path:
        return self.key_dir if self.key_dir is not None else settings.data_dir / "tuf-keys"

    def key_path(self, role: str, settings: Settings) -> Path:
        """The private key file of ``role`` (root, targets, bins, snapshot, timestamp)."""
        if role == "root" and self.root_key is not None:
            return self.root_key
        if role == "targets" and self.targets_key is not None:
            return self.targets_key
        return self.resolved_key_dir(settings) / f"{role}.key"

    def lifetime(self, role: str) -> timedelta:
        """How long a new version of ``role`` (``bins-*`` counts as ``bins``) is valid."""
        name = "bins" if role.startswith("bins") else role
        days: float = getattr(self, f"{name}_expiry_days")
        return timedelta(days=days)
