"""Availability rollups (hourly, daily), kept forever; an index to prune raw results by age."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

WHEN = sa.DateTime(timezone=True)
STATES = ("operational", "degraded", "partial", "down", "recovering", "maintenance", "unknown")


def upgrade() -> None:
    op.create_table(
        "availability_rollup",
        sa.Column("component_key", sa.String(), primary_key=True, nullable=False),
        sa.Column("period", sa.String(), primary_key=True, nullable=False),
        sa.Column("start", WHEN, primary_key=True, nullable=False),
        *(sa.Column(f"{state}_s", sa.Float(), nullable=False) for state in STATES),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_probe_result_started_at", "probe_result", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_probe_result_started_at", table_name="probe_result")
    op.drop_table("availability_rollup")
