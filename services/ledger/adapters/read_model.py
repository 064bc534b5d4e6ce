"""The PostgreSQL read model's tables (Alembic migrations create them; a test checks that
the migrations and these definitions agree).

shard_aggregates mirrors DynamoDB's aggregate items; bucket_totals and day_totals are
derived from it in the same transaction, so that a balance at any instant costs one day
row plus at most a day of buckets, however long the wallet's history. records mirrors
DynamoDB's record items, written in the same transaction as the aggregates they were
added to.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    false,
)

metadata = MetaData()

# One row per DynamoDB aggregate item: (wallet, 15-minute bucket, shard).
shard_aggregates = Table(
    "shard_aggregates",
    metadata,
    Column("wallet_id", Text, primary_key=True),
    Column("bucket", DateTime(timezone=True), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("amount", Numeric, nullable=False),
    Column("record_count", BigInteger, nullable=False),
)

# The sum over shards of one (wallet, bucket).
bucket_totals = Table(
    "bucket_totals",
    metadata,
    Column("wallet_id", Text, primary_key=True),
    Column("bucket", DateTime(timezone=True), primary_key=True),
    Column("amount", Numeric, nullable=False),
)

# Per wallet and UTC day: the day's sum and the balance at the end of the day.
day_totals = Table(
    "day_totals",
    metadata,
    Column("wallet_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("amount", Numeric, nullable=False),
    Column("balance_after", Numeric, nullable=False),
)

# One row per record item of the table: a wallet's deposits, listed in (occurred_at,
# request_id) order by the index, which is also the order of a listing's pages.
records = Table(
    "records",
    metadata,
    Column("wallet_id", Text, primary_key=True),
    # Byte order, whatever the database's locale: pages follow (occurred_at, request_id).
    Column("request_id", Text(collation="C"), primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("records_by_occurred_at", "wallet_id", "occurred_at", "request_id"),
)

# How far the updater has read each stream shard; written with the rows it covers. The
# next record to read is the one at sequence_number when at_sequence_number, else the one
# after it (services/updater/positions.py, ShardPosition). sequence_number is NULL only in
# rows written before migration 0002.
stream_checkpoints = Table(
    "stream_checkpoints",
    metadata,
    Column("stream_arn", Text, primary_key=True),
    Column("shard_id", Text, primary_key=True),
    Column("sequence_number", Text, nullable=True),
    Column("finished", Boolean, nullable=False),
    Column("at_sequence_number", Boolean, nullable=False, server_default=false()),
)

# One row: the read model's as_of, an instant before which every acknowledged record is
# projected (the query service's as_of; services/updater/positions.py, pass_as_of). The
# column's name predates that precision.
projection_status = Table(
    "projection_status",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("last_pass_finished_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("id = 1", name="projection_status_single_row"),
)
