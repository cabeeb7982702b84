"""endpoint delivery policy: retry schedule, rate limit, custom headers, ordering, health
(breaker, disabled reason); the tenant's operational webhook URL; operational events;
ix_deliveries_open (an endpoint's live deliveries) replaces ix_deliveries_due;
ix_endpoints_circuit (endpoints whose breaker is not closed)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "status IN ('pending', 'delivering', 'retrying')"
CIRCUIT_NOT_CLOSED = "circuit <> 'closed'"
# Deliveries waiting (for an enable, or their FIFO turn) have no next attempt; the older
# schema would strand them: due now instead.
STRANDED = (
    "UPDATE deliveries SET next_attempt_at = updated_at WHERE next_attempt_at IS NULL "
    "AND status IN ('pending', 'delivering', 'retrying')"
)


def endpoint_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("kind", sa.String(length=16), server_default="webhook", nullable=False),
        sa.Column("retry_schedule", sa.JSON(), nullable=True),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("headers_encrypted", sa.Text(), nullable=True),
        sa.Column("ordering", sa.String(length=16), server_default="unordered", nullable=False),
        sa.Column("disabled_reason", sa.String(length=16), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("circuit", sa.String(length=16), server_default="closed", nullable=False),
        sa.Column("circuit_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("circuit_cooldown", sa.Float(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
    )


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        for column in endpoint_columns():
            batch_op.add_column(column)
        batch_op.create_index(
            "ix_endpoints_circuit",
            ["circuit_until"],
            unique=False,
            sqlite_where=sa.text(CIRCUIT_NOT_CLOSED),
            postgresql_where=sa.text(CIRCUIT_NOT_CLOSED),
        )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("operational_webhook_url", sa.String(length=2048), nullable=True)
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("operational", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deliveries_due",
            sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
            postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_deliveries_open",
            ["endpoint_id", "id"],
            unique=False,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deliveries_open", sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN)
        )
        batch_op.create_index(
            "ix_deliveries_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
            postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        )
    op.execute(STRANDED)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("operational")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("operational_webhook_url")
    op.execute("DELETE FROM endpoints WHERE kind = 'operational'")
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_endpoints_circuit",
            sqlite_where=sa.text(CIRCUIT_NOT_CLOSED),
            postgresql_where=sa.text(CIRCUIT_NOT_CLOSED),
        )
        for column in reversed(endpoint_columns()):
            batch_op.drop_column(column.name)
