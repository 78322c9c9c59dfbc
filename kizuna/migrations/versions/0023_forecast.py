"""tasks.reminded_at: when the worker sent a task's reminder

Revision ID: 0023_forecast
Revises: 0022_sales
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0023_forecast"
down_revision = "0023_fields"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("reminded_at")
