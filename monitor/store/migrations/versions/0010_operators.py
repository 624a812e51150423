"""The operators' side: staff accounts and sessions, machine tokens, the append-only audit trail, idempotency keys;
the author and latency of push signals; cancelled occurrences of maintenance windows."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
REFUSED = "the audit trail is append-only"


def upgrade() -> None:
    op.create_table(
        "staff_user",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("networks", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("totp_secret", sa.String(), nullable=False),
        sa.Column("totp_enrolled_at", WHEN, nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("locked_until", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ux_staff_user_name", "staff_user", ["name"], unique=True)
    op.create_table(
        "staff_session",
        sa.Column("id", sa.String(), primary_key=True, nullable=False),
        sa.Column("user_id", ID, sa.ForeignKey("staff_user.id"), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
    )
    op.create_index("ix_staff_session_user_id", "staff_session", ["user_id"])
    op.create_table(
        "api_token",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("prefix", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
    )
    op.create_index("ux_api_token_digest", "api_token", ["digest"], unique=True)
    op.create_table(
        "audit_event",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("listener", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])
    op.create_index("ix_audit_event_target", "audit_event", ["target"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{REFUSED}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_event "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
        )
    op.create_table(
        "idempotency_key",
        sa.Column("principal", sa.String(), primary_key=True, nullable=False),
        sa.Column("key", sa.String(), primary_key=True, nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_idempotency_key_created_at", "idempotency_key", ["created_at"])
    with op.batch_alter_table("push_signal") as batch:
        batch.add_column(sa.Column("author", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("latency_s", sa.Float(), nullable=True))
    with op.batch_alter_table("maintenance_window") as batch:
        batch.add_column(sa.Column("skipped", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("maintenance_window") as batch:
        batch.drop_column("skipped")
    with op.batch_alter_table("push_signal") as batch:
        batch.drop_column("latency_s")
        batch.drop_column("author")
    op.drop_index("ix_idempotency_key_created_at", table_name="idempotency_key")
    op.drop_table("idempotency_key")
    op.execute(
        "DROP TRIGGER IF EXISTS audit_event_append_only"
        + (" ON audit_event" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    op.drop_index("ix_audit_event_target", table_name="audit_event")
    op.drop_index("ix_audit_event_at", table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_index("ux_api_token_digest", table_name="api_token")
    op.drop_table("api_token")
    op.drop_index("ix_staff_session_user_id", table_name="staff_session")
    op.drop_table("staff_session")
    op.drop_index("ux_staff_user_name", table_name="staff_user")
    op.drop_table("staff_user")
