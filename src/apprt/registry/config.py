"""The registry's knobs, from ``APPRT_REGISTRY_*`` environment variables.

=====================================  ==========  =========================================
variable                               default     meaning
=====================================  ==========  =========================================
``APPRT_REGISTRY_MAX_UPLOAD_BYTES``    128 MiB     an upload is cut (413) past this size
``APPRT_REGISTRY_UNPUBLISH_WINDOW_H``  72          hours after publication a version may be
                                                   unpublished
``APPRT_REGISTRY_FRONTEND_BUDGET``     10 MiB      frontend/ larger than this fails
``APPRT_REGISTRY_PACKAGE_BUDGET``      50 MiB      a package larger than this is flagged
                                                   (quality warning)
``APPRT_REGISTRY_BANDIT``              true        run bandit on the backend's Python
=====================================  ==========  =========================================

The component's lifespan puts one :class:`RegistryConfig` on
``app.state.registry_config`` unless one is already there (tests set their own).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1 << 20


class RegistryConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPRT_REGISTRY_", extra="ignore")

    max_upload_bytes: int = Field(128 * MIB, gt=0)
    unpublish_window_h: float = Field(72.0, ge=0)
    frontend_budget: int = Field(10 * MIB, gt=0)
    package_budget: int = Field(50 * MIB, gt=0)
    bandit: bool = True
