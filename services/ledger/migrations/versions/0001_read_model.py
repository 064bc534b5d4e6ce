"""The read model: aggregates by shard, bucket and day; stream checkpoints; pass status.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shard_aggregates",
        sa.Column("wallet_id", sa.Text(), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("shard", sa.Integer(), primary_key=True),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "bucket_totals",
        sa.Column("wallet_id", sa.Text(), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("amount", sa.Numeric(), nullable=False),
    )
    op.create_table(
        "day_totals",
        sa.Column("wallet_id", sa.Text(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("balance_after", sa.Numeric(), nullable=False),
    )
    op.create_table(
        "stream_checkpoints",
        sa.Column("stream_arn", sa.Text(), primary_key=True),
        sa.Column("shard_id", sa.Text(), primary_key=True),
        sa.Column("sequence_number", sa.Text(), nullable=True),
        sa.Column("finished", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "projection_status",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("last_pass_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name="projection_status_single_row"),
    )
    op.execute("INSERT INTO projection_status (id, last_pass_finished_at) VALUES (1, NULL)")


def downgrade() -> None:
    for table in (
        "projection_status",
        "stream_checkpoints",
        "day_totals",
        "bucket_totals",
        "shard_aggregates",
    ):
        op.drop_table(table)
