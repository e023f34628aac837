"""registry: publishers, keys, tokens, packages, versions, validation jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reserved so domains developed in parallel keep a linear history; the
    # registry domain fills it in with its tables.
    return


def downgrade() -> None:
    return
