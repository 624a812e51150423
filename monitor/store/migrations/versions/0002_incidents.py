"""Incidents and their updates, declared statuses, maintenance windows."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
TEXTS = ("message", "practitioner_consigne", "member_consigne")


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("title_fr", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), nullable=False),
        sa.Column("impact", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("resolved_at", WHEN, nullable=True),
    )
    op.create_index("ix_incident_resolved_at", "incident", ["resolved_at"])
    op.create_table(
        "incident_update",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("incident_id", ID, sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        *(sa.Column(f"{text}_{lang}", sa.Text(), nullable=False) for text in TEXTS for lang in ("fr", "en")),
        sa.Column("statuses", sa.JSON(), nullable=False),
    )
    op.create_index("ix_incident_update_incident_id_at", "incident_update", ["incident_id", "at"])
    op.create_table(
        "maintenance_window",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("title_fr", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("start_local", sa.DateTime(), nullable=False),  # a Europe/Paris wall time, no offset
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("recurrence", sa.JSON(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("cancelled_at", WHEN, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("maintenance_window")
    op.drop_index("ix_incident_update_incident_id_at", table_name="incident_update")
    op.drop_table("incident_update")
    op.drop_index("ix_incident_resolved_at", table_name="incident")
    op.drop_table("incident")
