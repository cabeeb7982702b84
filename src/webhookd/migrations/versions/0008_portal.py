"""tenant portal: one-time links (portal_tokens); tenants' portal settings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "portal_tokens",
        sa.Column("id", BigID, nullable=False),
        sa.Column("tenant_id", BigID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("endpoint_ids", sa.JSON(), nullable=True),
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_portal_tokens_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_tokens_token_hash")),
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("portal_frame_ancestors", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("portal_brand_color", sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column("portal_logo_url", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("portal_logo_url")
        batch_op.drop_column("portal_brand_color")
        batch_op.drop_column("portal_frame_ancestors")
    op.drop_table("portal_tokens")
