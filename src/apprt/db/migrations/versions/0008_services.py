"""services: app state per organization, audit log, backups

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reserved so domains developed in parallel keep a linear history; the
    # services domain fills it in with its tables.
    return


def downgrade() -> None:
    return
