"""runtime: a route opens at the install's activation (runtime_routes.live)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing routes were opened when they were made: they stay live.
    with op.batch_alter_table("runtime_routes") as batch:
        batch.add_column(sa.Column("live", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("runtime_routes") as batch:
        batch.drop_column("live")
