"""Svix-compatible API: endpoints' own signing secrets, uid, metadata and channels; events'
channels; tenants' delivery format and metadata; the deployment's event types (no tenant);
idempotent responses

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "delivery_format", sa.String(length=16), server_default="webhookd", nullable=False
            )
        )
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=True))
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uid", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("channels", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("secret_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_endpoints_tenant_id_uid"), ["tenant_id", "uid"]
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channels", sa.JSON(), nullable=True))
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.alter_column("tenant_id", existing_type=BigID, nullable=True)
    op.create_table(
        "idempotent_responses",
        sa.Column("id", BigID, nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotent_responses")),
        sa.UniqueConstraint("caller", "key", name=op.f("uq_idempotent_responses_caller_key")),
    )
    op.create_index(
        "ix_idempotent_responses_created_at", "idempotent_responses", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_idempotent_responses_created_at", table_name="idempotent_responses")
    op.drop_table("idempotent_responses")
    op.execute("DELETE FROM event_types WHERE tenant_id IS NULL")
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.alter_column("tenant_id", existing_type=BigID, nullable=False)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("channels")
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_endpoints_tenant_id_uid"), type_="unique")
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_encrypted")
        batch_op.drop_column("secret_encrypted")
        batch_op.drop_column("channels")
        batch_op.drop_column("metadata")
        batch_op.drop_column("uid")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("metadata")
        batch_op.drop_column("delivery_format")
