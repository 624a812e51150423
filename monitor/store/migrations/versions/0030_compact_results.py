"""Compact probe results: the check as a small integer (`probe_check`), times, durations and phases as integers
(µs; certificate dates in seconds), the reason as a code, one index; the rows already stored are converted.

Converted in SQL (one INSERT … SELECT each way), so that millions of rows take seconds. The codes of the reasons
are frozen here: `monitor.store.rows.REASON_CODES` may only grow.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0025"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
PHASES = ("resolve", "connect", "tls", "processing", "transfer")
# Every SQL text below is made of these constants only (ruff's S608 is silenced for that reason).
REASON_CODES = {
    "timeout": 1,
    "dns": 2,
    "connect": 3,
    "tls": 4,
    "http_status": 5,
    "body": 6,
    "assertion": 7,
    "protocol": 8,
    "too_many_redirects": 9,
    "certificate_expiry": 10,
    "internal": 11,
    "reported": 12,
    "no_heartbeat": 13,
}


def _compact_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        *(sa.Column(f"{phase}_us", sa.BigInteger(), nullable=True) for phase in PHASES),
        sa.Column("cert_expiry_s", sa.BigInteger(), nullable=True),
        sa.Column("chain_expiry_s", sa.BigInteger(), nullable=True),
        sa.Column("check_id", sa.Integer(), sa.ForeignKey("probe_check.id"), nullable=False),
        sa.Column("reason", sa.SmallInteger(), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("slow", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )


def _wide_table(name: str) -> None:
    """probe_result as 0001 and 0004 made it."""
    op.create_table(
        name,
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


def _case(column: str, pairs: dict[str, int] | dict[int, str]) -> str:
    whens = " ".join(
        f"WHEN {k!r} THEN {v!r}" if isinstance(k, str) else f"WHEN {k} THEN {v!r}" for k, v in pairs.items()
    )
    return f"CASE {column} {whens} END"


def _sql_to_compact(dialect: str) -> tuple[str, str, str]:
    """(µs of a timestamp column, whole seconds of one, µs of a phase of the JSON) as SQL templates."""
    if dialect == "sqlite":
        # naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff` (tables.UTCDateTime)
        micros = (
            "(CAST(strftime('%s', substr({c}, 1, 19)) AS INTEGER) * 1000000"
            " + CAST(substr(substr({c}, 21) || '000000', 1, 6) AS INTEGER))"
        )
        seconds = "CAST(strftime('%s', substr({c}, 1, 19)) AS INTEGER)"
        phase = (
            "CAST(round(CASE WHEN json_valid(r.phases) THEN json_extract(r.phases, '$.{p}') END * 1000000) AS INTEGER)"
        )
        return micros, seconds, phase
    micros = "CAST(round(extract(epoch FROM {c}) * 1000000) AS BIGINT)"
    seconds = "CAST(floor(extract(epoch FROM {c})) AS BIGINT)"
    phase = "CAST(round(CAST(r.phases ->> '{p}' AS DOUBLE PRECISION) * 1000000) AS BIGINT)"
    return micros, seconds, phase


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "probe_check",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.UniqueConstraint("key", name="uq_probe_check_key"),
    )
    op.execute("INSERT INTO probe_check (key) SELECT DISTINCT check_key FROM probe_result ORDER BY check_key")
    _compact_table("probe_result_compact")
    micros, seconds, phase = _sql_to_compact(dialect)
    columns = ["id", "started_us", "duration_us", *(f"{p}_us" for p in PHASES), "cert_expiry_s", "chain_expiry_s"]
    columns += ["check_id", "reason", "status_code", "success", "slow", "detail"]
    values = [
        "r.id",
        micros.format(c="r.started_at"),
        "CAST(round(r.duration_s * 1000000) AS BIGINT)",
        *(phase.format(p=p) for p in PHASES),
        seconds.format(c="r.cert_expiry"),
        seconds.format(c="r.chain_expiry"),
        "c.id",
        _case("r.reason", REASON_CODES),
        "r.status_code",
        "r.success",
        "r.slow",
        "r.detail",
    ]
    op.execute(
        f"INSERT INTO probe_result_compact ({', '.join(columns)}) SELECT {', '.join(values)}"  # noqa: S608
        " FROM probe_result r JOIN probe_check c ON c.key = r.check_key"
    )
    op.drop_index("ix_probe_result_started_at", table_name="probe_result")
    op.drop_index("ix_probe_result_check_key_started_at", table_name="probe_result")
    op.drop_table("probe_result")
    op.rename_table("probe_result_compact", "probe_result")
    if dialect == "postgresql":
        _rename_postgres("probe_result_compact", "probe_result", foreign_key="check_id")
    op.create_index("ix_probe_result_check_id_started_us", "probe_result", ["check_id", "started_us"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _wide_table("probe_result_wide")
    if dialect == "sqlite":
        when = "strftime('%Y-%m-%d %H:%M:%S', {s}, 'unixepoch') || '.' || printf('%06d', {us})"
        started = when.format(s="r.started_us / 1000000", us="r.started_us % 1000000")
        expiry = "CASE WHEN {c} IS NOT NULL THEN " + when.format(s="{c}", us="0") + " END"
        phases = "json_patch('{{}}', json_object({pairs}))"  # a merge patch drops the null members
    else:
        started = "TIMESTAMPTZ 'epoch' + r.started_us * INTERVAL '1 microsecond'"
        expiry = "to_timestamp({c})"
        phases = "json_strip_nulls(json_build_object({pairs}))"
    pairs = ", ".join(f"'{p}', r.{p}_us / 1000000.0" for p in PHASES)
    columns = "id, check_key, started_at, duration_s, success, reason, detail, status_code, phases"
    columns += ", cert_expiry, chain_expiry, slow"
    values = [
        "r.id",
        "c.key",
        started,
        "r.duration_us / 1000000.0",
        "r.success",
        _case("r.reason", {code: reason for reason, code in REASON_CODES.items()}),
        "r.detail",
        "r.status_code",
        phases.format(pairs=pairs),
        expiry.format(c="r.cert_expiry_s"),
        expiry.format(c="r.chain_expiry_s"),
        "r.slow",
    ]
    op.execute(
        f"INSERT INTO probe_result_wide ({columns}) SELECT {', '.join(values)}"  # noqa: S608
        " FROM probe_result r JOIN probe_check c ON c.id = r.check_id"
    )
    op.drop_index("ix_probe_result_check_id_started_us", table_name="probe_result")
    op.drop_table("probe_result")
    op.drop_table("probe_check")
    op.rename_table("probe_result_wide", "probe_result")
    if dialect == "postgresql":
        _rename_postgres("probe_result_wide", "probe_result")
    op.create_index("ix_probe_result_check_key_started_at", "probe_result", ["check_key", "started_at"])
    op.create_index("ix_probe_result_started_at", "probe_result", ["started_at"])


def _rename_postgres(old: str, new: str, foreign_key: str | None = None) -> None:
    """PostgreSQL keeps the names a table was created with on its sequence and constraints: give the renamed
    table the names it would have had, and move its id sequence past the ids copied."""
    op.execute(f"ALTER SEQUENCE {old}_id_seq RENAME TO {new}_id_seq")
    op.execute(f"ALTER INDEX {old}_pkey RENAME TO {new}_pkey")
    if foreign_key is not None:
        op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT {old}_{foreign_key}_fkey TO {new}_{foreign_key}_fkey")
    op.execute(f"SELECT setval('{new}_id_seq', COALESCE((SELECT max(id) FROM {new}), 0) + 1, false)")  # noqa: S608
