"""anonid: an event's anonymous id takes the 200 characters the tracking API accepts

Revision ID: 0026_anonid
Revises: 0025_deskmail
Create Date: 2026-11-28 16:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0026_anonid"
down_revision: str | Sequence[str] | None = "0025_deskmail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _resize(old: int, new: int) -> None:
    # SQLite does not enforce a VARCHAR's length, and a batch "alter" there rebuilds the whole events table
    # (losing its AUTOINCREMENT, so ids of deleted events could come back): only PostgreSQL changes.
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(
        "events",
        "anonymous_id",
        existing_type=sa.String(length=old),
        type_=sa.String(length=new),
        existing_nullable=True,
    )


def upgrade() -> None:
    # The tracking API (kizuna/ingest/spec.py MAX_ID) takes ids up to 200 characters, as Segment's SDKs may send;
    # PostgreSQL refused longer than 128 here.
    _resize(128, 200)


def downgrade() -> None:
    _resize(200, 128)
