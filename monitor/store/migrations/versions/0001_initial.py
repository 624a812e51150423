"""Initial schema: probe results, transitions, component statuses and check memories."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "probe_result",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("check_key", sa.String(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("cert_expiry", WHEN, nullable=True),
        sa.Column("chain_expiry", WHEN, nullable=True),
        sa.Column("slow", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_probe_result_check_key_started_at", "probe_result", ["check_key", "started_at"])
    op.create_table(
        "transition",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("component_key", sa.String(), nullable=False),
        sa.Column("previous", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_transition_component_key_at", "transition", ["component_key", "at"])
    op.create_index("ix_transition_at", "transition", ["at"])
    op.create_table(
        "component_status",
        sa.Column("component_key", sa.String(), primary_key=True, nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("since", WHEN, nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("raw", sa.String(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stable_since", WHEN, nullable=True),
        sa.Column("changed_at", WHEN, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "check_memory",
        sa.Column("check_key", sa.String(), primary_key=True, nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("since", WHEN, nullable=True),
        *(
            column
            for streak in ("fails", "oks", "fasts", "bads")
            for column in (
                sa.Column(f"{streak}_count", sa.Integer(), nullable=False),
                sa.Column(f"{streak}_since", WHEN, nullable=True),
            )
        ),
        sa.Column("last_result_at", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("check_memory")
    op.drop_table("component_status")
    op.drop_index("ix_transition_at", table_name="transition")
    op.drop_index("ix_transition_component_key_at", table_name="transition")
    op.drop_table("transition")
    op.drop_index("ix_probe_result_check_key_started_at", table_name="probe_result")
    op.drop_table("probe_result")
