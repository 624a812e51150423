"""Several instances on one PostgreSQL: the live instances, their location and heartbeat (monitor/cluster)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0040"
down_revision: str | None = "0035"
branch_labels: str | None = None
depends_on: str | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "instance",
        sa.Column("id", sa.String(), primary_key=True, nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("joined_at", WHEN, nullable=False),
        sa.Column("heartbeat_at", WHEN, nullable=False),
    )
    op.create_index("ix_instance_location_heartbeat", "instance", ["location", "heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_instance_location_heartbeat", table_name="instance")
    op.drop_table("instance")
