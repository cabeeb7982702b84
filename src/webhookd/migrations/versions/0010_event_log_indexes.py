"""events: indexes of the event log (a tenant's events newest first, by type, by time)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_events_tenant_id_id": ["tenant_id", "id"],
    "ix_events_tenant_id_event_type_id": ["tenant_id", "event_type", "id"],
    "ix_events_tenant_id_created_at_id": ["tenant_id", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "events", columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="events")
