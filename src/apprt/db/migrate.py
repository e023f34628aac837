"""Schema migrations, run by the platform itself.

``apprt serve`` upgrades the database to the newest revision at every start (an
already current database is a no-op), so operators never run a separate migration
step. The scripts live inside the package (``apprt.db:migrations``) and are found
through the import system, which keeps this working from an installed wheel where no
``alembic.ini`` exists.

Writing a new revision (developers)::

    .venv/bin/python -m apprt.db.migrate revision "add orgs"

autogenerates ``migrations/versions/NNNN_add_orgs.py`` by comparing the models
registered in :mod:`apprt.db.models` with a scratch database upgraded to head.
Review it: autogenerate misses renames and data moves.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine

SCRIPT_LOCATION = "apprt.db:migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts (and ``engine`` if given)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending migration; a database already at head is left untouched."""
    command.upgrade(alembic_config(engine), "head")


def schema_diff(engine: Engine) -> list[Any]:
    """Differences between the live schema and the models (``[]`` when in sync)."""
    from apprt.db.models import metadata

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def make_revision(message: str) -> None:
    """Autogenerate a revision against a scratch SQLite database at head."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        try:
            upgrade_to_head(engine)
            config = alembic_config(engine)
            config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
            config.set_section_option("post_write_hooks", "hooks", "ruff")
            config.set_section_option("post_write_hooks", "ruff.type", "module")
            config.set_section_option("post_write_hooks", "ruff.module", "ruff")
            config.set_section_option(
                "post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME"
            )
            number = sum(1 for _ in ScriptDirectory.from_config(config).walk_revisions())
            command.revision(config, message=message, autogenerate=True, rev_id=f"{number + 1:04d}")
        finally:
            engine.dispose()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "revision":
        make_revision(argv[1])
        return 0
    sys.stderr.write('usage: python -m apprt.db.migrate revision "message"\n')
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
