"""messages.first_attempt_at: when a sender first claimed a message (LINE's retry key lasts 24 hours);
message_templates.from_name/from_address/reply_to: a template's own sender

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.add_column(sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True))
    # Messages already tried: their creation is the best earlier bound there is.
    op.execute("UPDATE messages SET first_attempt_at = created_at WHERE attempts > 0")
    with op.batch_alter_table("message_templates", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.add_column(sa.Column("from_name", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("from_address", sa.String(length=320), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("reply_to", sa.String(length=320), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("message_templates", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("reply_to")
        batch_op.drop_column("from_address")
        batch_op.drop_column("from_name")
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("first_attempt_at")
