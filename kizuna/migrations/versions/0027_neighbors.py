"""neighbors: each product's most similar products by co-purchase, and its buyers, kept by the daily refresh

Revision ID: 0027_neighbors
Revises: 0026_anonid
Create Date: 2026-11-29 09:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0027_neighbors"
down_revision: str | Sequence[str] | None = "0026_anonid"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product_neighbors",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("neighbor_id", sa.Integer(), nullable=False),
        sa.Column("cosine", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_product_neighbors_product_id_products"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["neighbor_id"], ["products.id"], name=op.f("fk_product_neighbors_neighbor_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("product_id", "neighbor_id", name=op.f("pk_product_neighbors")),
    )
    op.create_table(
        "product_popularity",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("buyers", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_product_popularity_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_product_popularity")),
    )


def downgrade() -> None:
    op.drop_table("product_popularity")
    op.drop_table("product_neighbors")
