"""background jobs (recovery); tenants.retention_days; the indexes retention and recovery
read (events.created_at, dead_letters by event and by endpoint)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JOB_OPEN = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", BigID, nullable=False),
        sa.Column("public_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", BigID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_jobs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("public_id", name=op.f("uq_jobs_public_id")),
    )
    op.create_index(
        "ix_jobs_open",
        "jobs",
        ["id"],
        unique=False,
        sqlite_where=sa.text(JOB_OPEN),
        postgresql_where=sa.text(JOB_OPEN),
    )
    op.create_index("ix_jobs_tenant_id_id", "jobs", ["tenant_id", "id"], unique=False)
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    op.create_index(
        "ix_events_created_at", "events", ["created_at"], unique=False, postgresql_using="brin"
    )
    op.create_index("ix_dead_letters_event_id", "dead_letters", ["event_id"], unique=False)
    op.create_index(
        "ix_dead_letters_endpoint_id_id", "dead_letters", ["endpoint_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_endpoint_id_id", table_name="dead_letters")
    op.drop_index("ix_dead_letters_event_id", table_name="dead_letters")
    op.drop_index("ix_events_created_at", table_name="events")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
    op.drop_index("ix_jobs_tenant_id_id", table_name="jobs")
    op.drop_index("ix_jobs_open", table_name="jobs", sqlite_where=sa.text(JOB_OPEN))
    op.drop_table("jobs")
