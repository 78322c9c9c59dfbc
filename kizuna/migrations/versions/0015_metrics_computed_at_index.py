"""index customer_metrics.computed_at: an incremental segment refresh looks up the customers recomputed since

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 21:10:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_customer_metrics_computed_at", "customer_metrics", ["computed_at"])


def downgrade() -> None:
    op.drop_index("ix_customer_metrics_computed_at", table_name="customer_metrics")
