"""Narrow probe results (issue #16, point 5, for PostgreSQL): no surrogate id (nor its index), durations and
phases as int4 µs, certificate dates as int4 seconds after the start's second, an empty detail as NULL, the
columns in an order that needs no alignment padding. The rows already stored are converted, in their order.

A value outside its narrower column (a duration over 35 min, a certificate date more than 68 years from the
probe, a status code over 32767) is clamped to the column's bound, and how many were is logged; `rows.stored_row`
does the same for the results written later. Converted in SQL (one INSERT … SELECT each way).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | None = "0030"
branch_labels: str | None = None
depends_on: str | None = None

log = logging.getLogger(__name__)

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
INT4 = (-(2**31), 2**31 - 1)
INT2 = (-(2**15), 2**15 - 1)
# Every SQL text below is made of these constants only (ruff's S608 is silenced for that reason).
SECOND = "((r.started_us - ((r.started_us % 1000000) + 1000000) % 1000000) / 1000000)"  # floor, any sign
NARROW = {  # column of 0035 → (its value from a 0030 row, its bounds)
    "duration_us": ("r.duration_us", INT4),
    **{f"{p}_us": (f"r.{p}_us", INT4) for p in PHASES},
    "cert_expires_in_s": (f"r.cert_expiry_s - {SECOND}", INT4),
    "chain_expires_in_s": (f"r.chain_expiry_s - {SECOND}", INT4),
    "status_code": ("r.status_code", INT2),
}


def _narrow_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("check_id", sa.Integer(), sa.ForeignKey("probe_check.id"), nullable=False),
        sa.Column("duration_us", sa.Integer(), nullable=False),
        *(sa.Column(f"{phase}_us", sa.Integer(), nullable=True) for phase in PHASES),
        sa.Column("cert_expires_in_s", sa.Integer(), nullable=True),
        sa.Column("chain_expires_in_s", sa.Integer(), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("reason", sa.SmallInteger(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("slow", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )


def _wide_table(name: str) -> None:
    """probe_result as 0030 made it."""
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, nullable=False),
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


def _outside(value: str, bounds: tuple[int, int]) -> str:
    return f"({value} < {bounds[0]} OR {value} > {bounds[1]})"


def _clamp(value: str, bounds: tuple[int, int]) -> str:
    """`value` brought within `bounds` (NULL stays NULL)."""
    low, high = bounds
    return f"CASE WHEN {value} < {low} THEN {low} WHEN {value} > {high} THEN {high} ELSE {value} END"


def upgrade() -> None:
    bind = op.get_bind()
    counts = ", ".join(
        f"sum(CASE WHEN {_outside(value, bounds)} THEN 1 ELSE 0 END)" for value, bounds in NARROW.values()
    )
    found = bind.execute(sa.text(f"SELECT {counts} FROM probe_result r")).one()  # noqa: S608
    clamped = {column: int(count) for column, count in zip(NARROW, found, strict=True) if count}
    if clamped:
        log.warning(
            "migration 0035: %d out-of-range result values clamped to their column's bounds: %s",
            sum(clamped.values()),
            ", ".join(f"{column} ×{count}" for column, count in sorted(clamped.items())),
        )
    _narrow_table("probe_result_narrow")
    columns = [*NARROW, "started_us", "check_id", "reason", "success", "slow", "detail"]
    values = [_clamp(value, bounds) for value, bounds in NARROW.values()]
    values += ["r.started_us", "r.check_id", "r.reason", "r.success", "r.slow", "NULLIF(r.detail, '')"]
    op.execute(
        f"INSERT INTO probe_result_narrow ({', '.join(columns)}) SELECT {', '.join(values)}"  # noqa: S608
        " FROM probe_result r ORDER BY r.id"
    )
    op.drop_index("ix_probe_result_check_id_started_us", table_name="probe_result")
    op.drop_table("probe_result")
    op.rename_table("probe_result_narrow", "probe_result")
    if bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE probe_result RENAME CONSTRAINT probe_result_narrow_check_id_fkey TO probe_result_check_id_fkey"
        )
    op.create_index("ix_probe_result_check_id_started_us", "probe_result", ["check_id", "started_us"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _wide_table("probe_result_wide")
    expiry = "CASE WHEN r.{c} IS NOT NULL THEN " + SECOND + " + r.{c} END"
    columns = ["started_us", "duration_us", *(f"{p}_us" for p in PHASES), "cert_expiry_s", "chain_expiry_s"]
    columns += ["check_id", "reason", "status_code", "success", "slow", "detail"]
    values = ["r.started_us", "r.duration_us", *(f"r.{p}_us" for p in PHASES)]
    values += [expiry.format(c="cert_expires_in_s"), expiry.format(c="chain_expires_in_s")]
    values += ["r.check_id", "r.reason", "r.status_code", "r.success", "r.slow", "COALESCE(r.detail, '')"]
    place = "r.ctid" if dialect == "postgresql" else "r.rowid"  # the order they were written in: their ids
    op.execute(
        f"INSERT INTO probe_result_wide ({', '.join(columns)}) SELECT {', '.join(values)}"  # noqa: S608
        f" FROM probe_result r ORDER BY {place}"
    )
    op.drop_index("ix_probe_result_check_id_started_us", table_name="probe_result")
    op.drop_table("probe_result")
    op.rename_table("probe_result_wide", "probe_result")
    if dialect == "postgresql":
        op.execute("ALTER SEQUENCE probe_result_wide_id_seq RENAME TO probe_result_id_seq")
        op.execute("ALTER INDEX probe_result_wide_pkey RENAME TO probe_result_pkey")
        op.execute(
            "ALTER TABLE probe_result RENAME CONSTRAINT probe_result_wide_check_id_fkey TO probe_result_check_id_fkey"
        )
    op.create_index("ix_probe_result_check_id_started_us", "probe_result", ["check_id", "started_us"])
