"""chatdesk: the website chat's rate-limit counters, shared by every server process

Revision ID: 0025_chatdesk
Revises: 0024_faqchat
Create Date: 2026-11-28 15:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0025_chatdesk"
down_revision: str | Sequence[str] | None = "0024_faqchat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_rate_limits",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_chat_rate_limits")),
    )
    with op.batch_alter_table("chat_rate_limits", schema=None) as batch_op:
        batch_op.create_index("ix_chat_rate_limits_window_start", ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chat_rate_limits", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_rate_limits_window_start")
    op.drop_table("chat_rate_limits")
