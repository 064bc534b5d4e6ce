"""The records read model: each deposit the table holds, for statements and lookups.

Filled by the updater from the stream's record items from this revision on; a read model
migrated from an earlier revision gets the records written before it from one
`wallet update --rebuild` (docs/operations.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("wallet_id", sa.Text(), nullable=False),
        # Byte order, whatever the database's locale: pages follow (occurred_at, request_id).
        sa.Column("request_id", sa.Text(collation="C"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("wallet_id", "request_id"),
    )
    op.create_index("records_by_occurred_at", "records", ["wallet_id", "occurred_at", "request_id"])


def downgrade() -> None:
    op.drop_index("records_by_occurred_at", table_name="records")
    op.drop_table("records")
