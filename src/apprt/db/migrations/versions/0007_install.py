"""install: installations of apps in organizations, consent, settings

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reserved so domains developed in parallel keep a linear history; the
    # install domain fills it in with its tables.
    return


def downgrade() -> None:
    return
