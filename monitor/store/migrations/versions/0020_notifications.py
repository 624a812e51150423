"""Notifications: the outbox of events, deliveries to subscribers, webhooks and chat channels, subscribers and
their scopes, webhooks, and the last state told of each line."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_event",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("dispatched_at", WHEN, nullable=True),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_notification_event_dispatched_at_id", "notification_event", ["dispatched_at", "id"])
    op.create_table(
        "subscriber",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("confirmed_at", WHEN, nullable=True),
        sa.UniqueConstraint("address"),
    )
    op.create_table(
        "subscription",
        sa.Column("subscriber_id", ID, sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", "scope"),
    )
    op.create_index("ix_subscription_scope", "subscription", ["scope"])
    op.create_table(
        "webhook",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(), nullable=False),
        sa.Column("allow_private", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("failing_since", WHEN, nullable=True),
        sa.Column("disabled_at", WHEN, nullable=True),
    )
    op.create_table(
        "notification_delivery",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("event_id", ID, sa.ForeignKey("notification_event.id", ondelete="CASCADE"), nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subscriber_id", ID, sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=True),
        sa.Column("webhook_id", ID, sa.ForeignKey("webhook.id", ondelete="CASCADE"), nullable=True),
        sa.Column("chat", sa.String(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", WHEN, nullable=False),
        sa.Column("next_at", WHEN, nullable=False),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.Column("message_key", sa.String(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
    )
    op.create_index(
        "ix_notification_delivery_channel_state_next_at", "notification_delivery", ["channel", "state", "next_at"]
    )
    op.create_index("ix_notification_delivery_subscriber_id", "notification_delivery", ["subscriber_id"])
    op.create_index("ix_notification_delivery_event_id", "notification_delivery", ["event_id"])
    op.create_table(
        "notification_line_memory",
        sa.Column("line_key", sa.String(), primary_key=True, nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_line_memory")
    op.drop_index("ix_notification_delivery_event_id", table_name="notification_delivery")
    op.drop_index("ix_notification_delivery_subscriber_id", table_name="notification_delivery")
    op.drop_index("ix_notification_delivery_channel_state_next_at", table_name="notification_delivery")
    op.drop_table("notification_delivery")
    op.drop_table("webhook")
    op.drop_index("ix_subscription_scope", table_name="subscription")
    op.drop_table("subscription")
    op.drop_table("subscriber")
    op.drop_index("ix_notification_event_dispatched_at_id", table_name="notification_event")
    op.drop_table("notification_event")
