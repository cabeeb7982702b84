"""metric_samples: each process's counters per sampling period (the console's charts)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("id", BigID, nullable=False),
        sa.Column("process", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("durations", sa.JSON(), nullable=False),
        sa.Column("backlog", sa.Integer(), nullable=True),
        sa.Column("dead_letters", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_samples")),
    )
    op.create_index("ix_metric_samples_at", "metric_samples", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_metric_samples_at", table_name="metric_samples")
    op.drop_table("metric_samples")
