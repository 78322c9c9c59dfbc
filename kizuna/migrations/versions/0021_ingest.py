"""ingest: tracking sources; event types and journey goals up to 200 characters

Revision ID: 0021_ingest
Revises: 0020
Create Date: 2026-11-28 00:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_ingest"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("rejected_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
        sa.UniqueConstraint("name"),
        sqlite_autoincrement=True,
    )
    # Segment SDKs send event names as people write them ("Order Completed"), up to 200 characters.
    with op.batch_alter_table("events", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("type", existing_type=sa.String(length=64), type_=sa.String(length=200))
    with op.batch_alter_table("journeys", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("goal_event", existing_type=sa.String(length=64), type_=sa.String(length=200))


def downgrade() -> None:
    with op.batch_alter_table("journeys", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("goal_event", existing_type=sa.String(length=200), type_=sa.String(length=64))
    with op.batch_alter_table("events", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("type", existing_type=sa.String(length=200), type_=sa.String(length=64))
    op.drop_table("sources")
