"""Incidents and their updates, declared statuses, maintenance windows."""

from __future__ import annotations

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # filled in by the incidents work


def downgrade() -> None:
    pass
