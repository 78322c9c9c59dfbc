"""segments (dynamic rules and static lists), their membership history, and an events index for event rules

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 10:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rule", JSON, nullable=True),
        sa.Column("source", JSON, nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("full_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_segments_created_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "segment_memberships",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_segment_memberships_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_memberships_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_memberships")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_segment_memberships_current",
        "segment_memberships",
        ["segment_id", "exited_at", "customer_id"],
        unique=False,
    )
    op.create_index("ix_segment_memberships_entered", "segment_memberships", ["segment_id", "entered_at"], unique=False)
    op.create_index("ix_segment_memberships_customer", "segment_memberships", ["customer_id"], unique=False)
    # An event rule over everyone ("did page_view within 30 days") reads one type's recent events: this index
    # holds exactly those, with the customer, so the set is read from the index alone.
    op.create_index("ix_events_type_occurred", "events", ["type", "occurred_at", "customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_type_occurred", table_name="events")
    op.drop_table("segment_memberships")
    op.drop_table("segments")
