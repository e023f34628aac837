"""Every domain's models, imported in one place.

Alembic (autogenerate, :func:`apprt.db.migrate.schema_diff`) and the tests only see
tables whose models were imported. Each domain package keeps its models in its own
``models.py``; add one import line here when a domain gets tables.
"""

from __future__ import annotations

from apprt.accounts import models as accounts_models
from apprt.db.base import Base
from apprt.install import models as install_models  # noqa: F401
from apprt.jobs import models as jobs_models  # noqa: F401
from apprt.registry import models as registry_models  # noqa: F401
from apprt.registry.tuf import models as tuf_models  # noqa: F401
from apprt.runtime import models as runtime_models  # noqa: F401
from apprt.services import models as services_models  # noqa: F401

metadata = Base.metadata

__all__ = ["accounts_models", "metadata"]
