"""runtime: limit events (memory, pids, cpu, storage, request timeouts, egress refused)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runtime_limit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=True),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["runtime_instances.id"],
            name=op.f("fk_runtime_limit_events_instance_id_runtime_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_limit_events")),
    )
    with op.batch_alter_table("runtime_limit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runtime_limit_events_instance_id_id", ["instance_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("runtime_limit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_runtime_limit_events_instance_id_id")
    op.drop_table("runtime_limit_events")
