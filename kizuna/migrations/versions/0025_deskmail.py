"""deskmail: the SLA clock of an inquiry pauses while it waits for the customer

Revision ID: 0025_deskmail
Revises: 0025_chatdesk
Create Date: 2026-11-28 15:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0025_deskmail"
down_revision: str | Sequence[str] | None = "0025_chatdesk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla_paused_seconds", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("pending_seconds", sa.Integer(), server_default="0", nullable=False))
    # Tickets already waiting for the customer pause from their last change (most often the reply that made them
    # pending): the best time known, and better than leaving them to count as overdue while the customer is away.
    op.execute("UPDATE inquiries SET sla_paused_at = updated_at WHERE status = 'pending'")


def downgrade() -> None:
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.drop_column("pending_seconds")
        batch_op.drop_column("sla_paused_seconds")
        batch_op.drop_column("sla_paused_at")
