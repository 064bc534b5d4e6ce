"""Checkpoints say whether they resume at or after their sequence number.

A shard that was never read, or read empty, is checkpointed at its first sequence number
instead of without one, so that a stream trimmed past it is detected rather than read from
its trim horizon. Existing checkpoints resume after their sequence number, as before; those
without one resume at their shard's start (services/updater/positions.py, plan_reads).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "stream_checkpoints",
        sa.Column("at_sequence_number", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("stream_checkpoints", "at_sequence_number")
