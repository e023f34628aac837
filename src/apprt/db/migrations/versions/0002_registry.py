"""registry: publishers, keys, tokens, packages, versions, validation jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_publishers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_publishers")),
        sa.UniqueConstraint("name", name=op.f("uq_registry_publishers_name")),
    )
    op.create_table(
        "registry_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("publisher_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("latest_version", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["registry_publishers.id"],
            name=op.f("fk_registry_apps_publisher_id_registry_publishers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_apps")),
        sa.UniqueConstraint("app_id", name=op.f("uq_registry_apps_app_id")),
    )
    with op.batch_alter_table("registry_apps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_apps_publisher_id"), ["publisher_id"], unique=False
        )

    op.create_table(
        "registry_publisher_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["registry_publishers.id"],
            name=op.f("fk_registry_publisher_keys_publisher_id_registry_publishers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_publisher_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_registry_publisher_keys_key_id")),
    )
    with op.batch_alter_table("registry_publisher_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_publisher_keys_publisher_id"), ["publisher_id"], unique=False
        )

    op.create_table(
        "registry_publisher_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["registry_publishers.id"],
            name=op.f("fk_registry_publisher_tokens_publisher_id_registry_publishers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_publisher_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_registry_publisher_tokens_token_hash")),
    )
    with op.batch_alter_table("registry_publisher_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_publisher_tokens_publisher_id"), ["publisher_id"], unique=False
        )

    op.create_table(
        "registry_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_pk", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "uploaded",
                "validating",
                "rejected",
                "pending_review",
                "published",
                "deprecated",
                "yanked",
                "unpublished",
                name="versionstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("manifest_text", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=256), nullable=False),
        sa.Column("dependencies", sa.JSON(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("backport", sa.Boolean(), nullable=False),
        sa.Column("upload_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deprecation_message", sa.String(length=1000), nullable=False),
        sa.Column("replacement", sa.String(length=200), nullable=False),
        sa.Column("yank_reason", sa.String(length=1000), nullable=False),
        sa.Column("yanked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["registry_apps.id"], name=op.f("fk_registry_versions_app_pk_registry_apps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_versions")),
        sa.UniqueConstraint("app_pk", "version", name=op.f("uq_registry_versions_app_pk_version")),
    )
    with op.batch_alter_table("registry_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_versions_app_pk"), ["app_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_registry_versions_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_registry_versions_state"), ["state"], unique=False)

    op.create_table(
        "registry_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "uploaded",
                "validating",
                "rejected",
                "pending_review",
                "published",
                "deprecated",
                "yanked",
                "unpublished",
                name="versionstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("backport", sa.Boolean(), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("idempotent", sa.Boolean(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["registry_publishers.id"],
            name=op.f("fk_registry_uploads_publisher_id_registry_publishers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["registry_versions.id"],
            name=op.f("fk_registry_uploads_version_id_registry_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_uploads")),
    )
    with op.batch_alter_table("registry_uploads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_uploads_publisher_id"), ["publisher_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_registry_uploads_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_registry_uploads_state"), ["state"], unique=False)

    op.create_table(
        "registry_check_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pass", "warn", "fail", "skipped", name="checkstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["registry_uploads.id"],
            name=op.f("fk_registry_check_results_upload_id_registry_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_check_results")),
    )
    with op.batch_alter_table("registry_check_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_check_results_upload_id"), ["upload_id"], unique=False
        )

    op.create_table(
        "registry_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.Integer(), nullable=True),
        sa.Column("app_id", sa.String(length=128), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column(
            "from_state",
            sa.Enum(
                "uploaded",
                "validating",
                "rejected",
                "pending_review",
                "published",
                "deprecated",
                "yanked",
                "unpublished",
                name="versionstate",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_state",
            sa.Enum(
                "uploaded",
                "validating",
                "rejected",
                "pending_review",
                "published",
                "deprecated",
                "yanked",
                "unpublished",
                name="versionstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["registry_uploads.id"],
            name=op.f("fk_registry_transitions_upload_id_registry_uploads"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_transitions")),
    )
    with op.batch_alter_table("registry_transitions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_registry_transitions_app_version", ["app_id", "version"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registry_transitions_upload_id"), ["upload_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_transitions_upload_id"))
        batch_op.drop_index("ix_registry_transitions_app_version")

    op.drop_table("registry_transitions")
    with op.batch_alter_table("registry_check_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_check_results_upload_id"))

    op.drop_table("registry_check_results")
    with op.batch_alter_table("registry_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_uploads_state"))
        batch_op.drop_index(batch_op.f("ix_registry_uploads_sha256"))
        batch_op.drop_index(batch_op.f("ix_registry_uploads_publisher_id"))

    op.drop_table("registry_uploads")
    with op.batch_alter_table("registry_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_versions_state"))
        batch_op.drop_index(batch_op.f("ix_registry_versions_sha256"))
        batch_op.drop_index(batch_op.f("ix_registry_versions_app_pk"))

    op.drop_table("registry_versions")
    with op.batch_alter_table("registry_publisher_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_publisher_tokens_publisher_id"))

    op.drop_table("registry_publisher_tokens")
    with op.batch_alter_table("registry_publisher_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_publisher_keys_publisher_id"))

    op.drop_table("registry_publisher_keys")
    with op.batch_alter_table("registry_apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_apps_publisher_id"))

    op.drop_table("registry_apps")
    op.drop_table("registry_publishers")
