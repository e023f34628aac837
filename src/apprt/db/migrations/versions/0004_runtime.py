"""runtime: instances, lifecycle transitions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reserved so domains developed in parallel keep a linear history; the
    # runtime domain fills it in with its tables.
    return


def downgrade() -> None:
    return
