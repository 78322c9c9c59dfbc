"""line settings, webhook events and links; webhook endpoints and allow-list

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-27 21:08:27.321555

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
# "0017" (the email helper's revision) once both are merged; the lead re-chains it.
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "line_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_token", sa.Text(), nullable=True),
        sa.Column("channel_secret", sa.Text(), nullable=True),
        sa.Column("api_base", sa.String(length=500), nullable=True),
        sa.Column("bot_basic_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_settings")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "line_webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("webhook_event_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("redelivery", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_webhook_events")),
        sa.UniqueConstraint("webhook_event_id", name=op.f("uq_line_webhook_events_webhook_event_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook_allowlist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry", sa.String(length=255), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_allowlist")),
        sa.UniqueConstraint("entry", name=op.f("uq_webhook_allowlist_entry")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
        sa.UniqueConstraint("name", name=op.f("uq_webhook_endpoints_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "line_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("line_user_id", sa.String(length=64), nullable=True),
        sa.Column("merged_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_line_links_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_links")),
        sa.UniqueConstraint("nonce", name=op.f("uq_line_links_nonce")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("line_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_line_links_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("line_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_line_links_customer_id"))

    op.drop_table("line_links")
    op.drop_table("webhook_endpoints")
    op.drop_table("webhook_allowlist")
    op.drop_table("line_webhook_events")
    op.drop_table("line_settings")
