"""fair claim order: deliveries.queue_key and its index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LIVE = "next_attempt_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("queue_key", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_deliveries_queue",
            ["queue_key", "next_attempt_at", "endpoint_id"],
            unique=False,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )
    if op.get_bind().dialect.name == "postgresql":
        # A queue table: every delivery updates its row twice and leaves dead entries in
        # the claim index until VACUUM removes them; vacuum it after ~2 % of rows changed
        # (the default waits for 20 %), so claims don't wade through them.
        op.execute(
            "ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02, "
            "autovacuum_analyze_scale_factor = 0.05)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE deliveries RESET (autovacuum_vacuum_scale_factor, "
            "autovacuum_analyze_scale_factor)"
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deliveries_queue", sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE)
        )
        batch_op.drop_column("queue_key")
