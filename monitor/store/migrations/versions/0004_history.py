"""Availability rollups (hourly, daily)."""

from __future__ import annotations

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # filled in by the history work


def downgrade() -> None:
    pass
