"""One writer per fact: each transition names the one before it in its component's chain (`after_id`, 0 for the
first), and no two transitions follow the same one (a unique index) — two instances can never both write a fact."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0045"
down_revision: str | None = "0040"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("transition") as batch:
        batch.add_column(sa.Column("after_id", sa.BigInteger(), nullable=False, server_default="0"))
    # the chains stored so far, in the order of their ids
    op.execute(
        "UPDATE transition SET after_id = COALESCE((SELECT max(t.id) FROM transition t "
        "WHERE t.component_key = transition.component_key AND t.id < transition.id), 0)"
    )
    op.create_index("ux_transition_chain", "transition", ["component_key", "after_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_transition_chain", table_name="transition")
    with op.batch_alter_table("transition") as batch:
        batch.drop_column("after_id")
