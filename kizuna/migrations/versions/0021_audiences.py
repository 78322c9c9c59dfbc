"""third-party provision records (APPI)

Revision ID: 0021_audiences
Revises: 0020
Create Date: 2026-11-28 00:35:31.249325

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021_audiences"
down_revision: str | Sequence[str] | None = "0021_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('third_party_provisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=False),
    sa.Column('fields', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('provided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('provided_by', sa.String(length=320), nullable=False),
    sa.Column('via', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_third_party_provisions')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('third_party_provisions', schema=None) as batch_op:
        batch_op.create_index('ix_third_party_provisions_customer', ['customer_id', 'provided_at'], unique=False)
        batch_op.create_index('ix_third_party_provisions_provided_at', ['provided_at'], unique=False)
        batch_op.create_index('ix_third_party_provisions_recipient', ['recipient', 'provided_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('third_party_provisions')
