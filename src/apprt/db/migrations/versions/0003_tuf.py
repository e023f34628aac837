"""tuf: signed metadata of the registry's TUF repository

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reserved so domains developed in parallel keep a linear history; the
    # tuf domain fills it in with its tables.
    return


def downgrade() -> None:
    return
