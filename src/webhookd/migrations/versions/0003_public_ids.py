"""public ids (ULIDs) for tenants, endpoints, events, deliveries and dead letters; tenant
uid; delivery status `failed` renamed `retrying`; indexes for delivery listings

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Existing rows get a ULID whose time part is their created_at (so the ids of old rows sort
by age, like new ones), filled in batches.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("tenants", "endpoints", "events", "deliveries", "dead_letters")
BATCH = 5000
FAILING = "status IN ('retrying', 'dead')"


def _ulid_at(moment: dt.datetime | str | None) -> uuid.UUID:
    if isinstance(moment, str):  # SQLite hands back text
        moment = dt.datetime.fromisoformat(moment)
    if moment is None:
        millis = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    else:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        millis = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(millis << 80) | int.from_bytes(os.urandom(10), "big"))


def _backfill(table: str) -> None:
    bind = op.get_bind()
    rows = sa.table(
        table, sa.column("id"), sa.column("public_id", sa.Uuid()), sa.column("created_at")
    )
    while True:
        found = bind.execute(
            sa.select(rows.c.id, rows.c.created_at)
            .where(rows.c.public_id.is_(None))
            .order_by(rows.c.id)
            .limit(BATCH)
        ).all()
        if not found:
            return
        bind.execute(
            rows.update()
            .where(rows.c.id == sa.bindparam("b_id"))
            .values(public_id=sa.bindparam("b_pid")),
            [{"b_id": row_id, "b_pid": _ulid_at(created)} for row_id, created in found],
        )


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("public_id", sa.Uuid(), nullable=True))
        _backfill(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("public_id", existing_type=sa.Uuid(), nullable=False)
            batch_op.create_unique_constraint(batch_op.f(f"uq_{table}_public_id"), ["public_id"])
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uid", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_tenants_uid"), ["uid"])
    op.execute("UPDATE deliveries SET status = 'retrying' WHERE status = 'failed'")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_endpoint_id")
        batch_op.create_index("ix_deliveries_endpoint_id_id", ["endpoint_id", "id"], unique=False)
        batch_op.create_index(
            "ix_deliveries_failing",
            ["tenant_id", "status", "id"],
            unique=False,
            sqlite_where=sa.text(FAILING),
            postgresql_where=sa.text(FAILING),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deliveries_failing",
            sqlite_where=sa.text(FAILING),
            postgresql_where=sa.text(FAILING),
        )
        batch_op.drop_index("ix_deliveries_endpoint_id_id")
        batch_op.create_index("ix_deliveries_endpoint_id", ["endpoint_id"], unique=False)
    op.execute("UPDATE deliveries SET status = 'failed' WHERE status = 'retrying'")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tenants_uid"), type_="unique")
        batch_op.drop_column("uid")
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"uq_{table}_public_id"), type_="unique")
            batch_op.drop_column("public_id")
