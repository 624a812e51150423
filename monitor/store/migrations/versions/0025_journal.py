"""Idempotent writes: a unique write key per transition, and the journal segments already replayed."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0020"
branch_labels: str | None = None
depends_on: str | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("transition", sa.Column("uid", sa.String(), nullable=True))  # NULL for the rows before
    op.create_index("ux_transition_uid", "transition", ["uid"], unique=True)
    op.create_table(
        "journal_segment",
        sa.Column("segment", sa.String(), primary_key=True, nullable=False),
        sa.Column("applied_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("journal_segment")
    op.drop_index("ux_transition_uid", table_name="transition")
    with op.batch_alter_table("transition") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("uid")
