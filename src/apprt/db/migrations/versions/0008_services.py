"""services: app state per organization, audit log, backups

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "services_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("permission", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services_audit")),
    )
    with op.batch_alter_table("services_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_services_audit_at"), ["at"], unique=False)
        batch_op.create_index("ix_services_audit_org_id", ["org", "id"], unique=False)
    op.create_table(
        "state_entries",
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        # byte-wise order on every backend, so that a key prefix is a range
        sa.Column(
            "key",
            sa.String(length=256).with_variant(sa.String(length=256, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org", "app_id", "key", name=op.f("pk_state_entries")),
    )
    op.create_table(
        "state_usage",
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org", "app_id", name=op.f("pk_state_usage")),
    )


def downgrade() -> None:
    op.drop_table("state_usage")
    op.drop_table("state_entries")
    with op.batch_alter_table("services_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_services_audit_org_id")
        batch_op.drop_index(batch_op.f("ix_services_audit_at"))
    op.drop_table("services_audit")
