"""Push signals from partners."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "push_signal",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("check_key", sa.String(), nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
    )
    op.create_index("ix_push_signal_received_at", "push_signal", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_push_signal_received_at", table_name="push_signal")
    op.drop_table("push_signal")
