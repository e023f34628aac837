"""runtime: instances, routes, lifecycle transitions, idle policies

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = ("installed", "loading", "running", "suspended", "updating", "uninstalling", "failed")


def upgrade() -> None:
    op.create_table(
        "runtime_idle_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("idle_timeout_s", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_idle_policies")),
        sa.UniqueConstraint("org", "app_id", name=op.f("uq_runtime_idle_policies_org_app_id")),
    )
    op.create_table(
        "runtime_instances",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=True),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("tenancy", sa.String(length=16), nullable=False),
        sa.Column("entry", sa.String(length=256), nullable=False),
        sa.Column("driver", sa.String(length=32), nullable=False),
        sa.Column(
            "state",
            sa.Enum(*_STATES, name="runtime_state", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("handle", sa.JSON(), nullable=True),
        sa.Column("code_dir", sa.String(length=1024), nullable=False),
        sa.Column("env_dir", sa.String(length=1024), nullable=True),
        sa.Column("data_dir", sa.String(length=1024), nullable=False),
        sa.Column("run_dir", sa.String(length=1024), nullable=False),
        sa.Column("log_dir", sa.String(length=1024), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("grants", sa.JSON(), nullable=False),
        sa.Column("idle_timeout_s", sa.Double(), nullable=True),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("recent_crashes", sa.JSON(), nullable=False),
        sa.Column("last_exit", sa.JSON(), nullable=True),
        sa.Column("failure_log", sa.Text(), nullable=True),
        sa.Column("last_request_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_instances")),
    )
    with op.batch_alter_table("runtime_instances", schema=None) as batch_op:
        batch_op.create_index("ix_runtime_instances_app_id_org", ["app_id", "org"], unique=False)
    op.create_table(
        "runtime_routes",
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["runtime_instances.id"],
            name=op.f("fk_runtime_routes_instance_id_runtime_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org", "app_id", name=op.f("pk_runtime_routes")),
    )
    with op.batch_alter_table("runtime_routes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runtime_routes_instance_id"), ["instance_id"], unique=False
        )
    op.create_table(
        "runtime_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column(
            "from_state",
            sa.Enum(*_STATES, name="runtime_state", native_enum=False, length=16),
            nullable=True,
        ),
        sa.Column(
            "to_state",
            sa.Enum(*_STATES, name="runtime_state", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["runtime_instances.id"],
            name=op.f("fk_runtime_transitions_instance_id_runtime_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_transitions")),
    )
    with op.batch_alter_table("runtime_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runtime_transitions_instance_id"), ["instance_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("runtime_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtime_transitions_instance_id"))
    op.drop_table("runtime_transitions")
    with op.batch_alter_table("runtime_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtime_routes_instance_id"))
    op.drop_table("runtime_routes")
    with op.batch_alter_table("runtime_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_runtime_instances_app_id_org")
    op.drop_table("runtime_instances")
    op.drop_table("runtime_idle_policies")
