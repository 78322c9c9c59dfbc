"""a company's contacts by name from one index (company_id, status, name_sort, id), replacing the company_id index

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 16:05:00

"""

from typing import Sequence, Union

from alembic import op

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index(
        "ix_customers_company_status_name", "customers", ["company_id", "status", "name_sort", "id"], unique=False
    )
    op.drop_index("ix_customers_company_id", table_name="customers")


def downgrade() -> None:
    op.create_index("ix_customers_company_id", "customers", ["company_id"], unique=False)
    op.drop_index("ix_customers_company_status_name", table_name="customers")
