"""tuf: signed metadata of the registry's TUF repository

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tuf_metadata",
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("role", "version", name=op.f("pk_tuf_metadata")),
    )
    op.create_table(
        "tuf_targets",
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("bin", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_tuf_targets")),
    )
    with op.batch_alter_table("tuf_targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tuf_targets_bin"), ["bin"], unique=False)
        batch_op.create_index(batch_op.f("ix_tuf_targets_sha256"), ["sha256"], unique=False)
    op.create_table(
        "tuf_lock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuf_lock")),
    )


def downgrade() -> None:
    op.drop_table("tuf_lock")
    with op.batch_alter_table("tuf_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tuf_targets_sha256"))
        batch_op.drop_index(batch_op.f("ix_tuf_targets_bin"))
    op.drop_table("tuf_targets")
    op.drop_table("tuf_metadata")
