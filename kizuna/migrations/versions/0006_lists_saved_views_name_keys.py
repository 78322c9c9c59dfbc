"""lists: saved views, and the customers' name search and sort keys

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 14:50:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from kizuna.customers.models import NAME_KEY_SQL, NAME_SORT_SQL

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "saved_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("columns", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_saved_views_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        sa.UniqueConstraint("user_id", "list_name", "name", name=op.f("uq_saved_views_user_id_list_name_name")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_saved_views_user_id"), "saved_views", ["user_id"], unique=False)
    # Generated columns fill themselves for the rows already stored. SQLite can add only VIRTUAL ones to an
    # existing table (an index on one stores its values all the same); PostgreSQL 15 has only STORED ones.
    stored = op.get_bind().dialect.name == "postgresql"
    key = sa.String(250).with_variant(sa.String(250, collation="C"), "postgresql")
    for name, sql in (("name_key", NAME_KEY_SQL), ("name_sort", NAME_SORT_SQL)):
        op.add_column("customers", sa.Column(name, key, sa.Computed(sql, persisted=stored), nullable=True))
        op.create_index(f"ix_customers_{name}", "customers", [name, "status"], unique=False)
    op.create_index("ix_customers_status_name_sort", "customers", ["status", "name_sort", "id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_customers_status_name_sort", table_name="customers")
    for name in ("name_sort", "name_key"):
        op.drop_index(f"ix_customers_{name}", table_name="customers")
        op.drop_column("customers", name)
    op.drop_index(op.f("ix_saved_views_user_id"), table_name="saved_views")
    op.drop_table("saved_views")
