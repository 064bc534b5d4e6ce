"""`wallet reconcile`: does the read model equal the DynamoDB aggregates, and (with
--records) do the aggregates equal the records they came from, does the read model hold
every record of the table and nothing else, and does each of its buckets sum its records?
Run it after `wallet update` has caught up: a read model that lags shows as differences."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, text

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.read_model import records as records_table
from services.ledger.adapters.read_model import shard_aggregates
from services.ledger.adapters.table_scan import Item, parallel_scan
from services.ledger.domain.buckets import format_instant
from services.ledger.domain.money import exact_arithmetic
from services.ledger.domain.records import StoredRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# Buckets in UTC on both sides: in another zone, the datetimes of a repeated DST hour
# compare unequal to the same instants in UTC.
ItemKey = tuple[str, datetime, int]
Totals = dict[ItemKey, tuple[Decimal, int]]

# Rows of the derived tables that disagree with what they are derived from.
_INCONSISTENT_BUCKETS = text(
    """
    SELECT b.wallet_id, b.bucket FROM bucket_totals b
    FULL JOIN (SELECT wallet_id, bucket, sum(amount) AS amount FROM shard_aggregates
               GROUP BY wallet_id, bucket) s USING (wallet_id, bucket)
    WHERE b.amount IS DISTINCT FROM s.amount
    """
)
_INCONSISTENT_DAYS = text(
    """
    WITH sums AS (
      SELECT wallet_id, (bucket AT TIME ZONE 'UTC')::date AS day, sum(amount) AS amount
      FROM bucket_totals GROUP BY 1, 2
    ),
    expected AS (
      SELECT wallet_id, day, amount,
             sum(amount) OVER (PARTITION BY wallet_id ORDER BY day) AS balance_after
      FROM sums
    )
    SELECT coalesce(d.wallet_id, e.wallet_id), coalesce(d.day, e.day) FROM day_totals d
    FULL JOIN expected e USING (wallet_id, day)
    WHERE d.amount IS DISTINCT FROM e.amount OR d.balance_after IS DISTINCT FROM e.balance_after
    """
)

# Buckets of bucket_totals that differ from the sum of the read model's records in them
# (15-minute buckets from the epoch: services/ledger/domain/buckets.py).
_BUCKETS_UNLIKE_RECORDS = text(
    """
    SELECT coalesce(b.wallet_id, r.wallet_id), coalesce(b.bucket, r.bucket) FROM bucket_totals b
    FULL JOIN (SELECT wallet_id,
                      date_bin('15 minutes', occurred_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')
                        AS bucket,
                      sum(amount) AS amount
               FROM records GROUP BY 1, 2) r USING (wallet_id, bucket)
    WHERE b.amount IS DISTINCT FROM r.amount
    """
)

RecordKey = tuple[str, str]
# (occurred_at in UTC, amount, recorded_at in UTC) of a record.
RecordFields = tuple[datetime, Decimal, datetime]


@dataclass
class Report:
    differences: list[str] = field(default_factory=list)
    aggregates: int = 0
    records: int = 0


def reconcile(
    dynamodb: "DynamoDBClient",
    table_name: str,
    engine: Engine,
    *,
    check_records: bool,
    segments: int = 4,
) -> Report:
    report = Report()
    table, table_records = _scan(dynamodb, table_name, segments, with_records=check_records)
    report.aggregates = len(table)
    _compare(report, "read model", _read_model(engine), "table", table)
    with engine.connect() as connection:
        for wallet_id, bucket in connection.execute(_INCONSISTENT_BUCKETS):
            report.differences.append(
                f"bucket_totals {wallet_id} {format_instant(bucket)} differs from its shards"
            )
        for wallet_id, day in connection.execute(_INCONSISTENT_DAYS):
            report.differences.append(f"day_totals {wallet_id} {day} differs from its buckets")
    if check_records:
        report.records = len(table_records)
        _compare(report, "aggregates", table, "records", _record_totals(table_records))
        _compare_records(report, _read_model_records(engine), table_records)
        with engine.connect() as connection:
            for wallet_id, bucket in connection.execute(_BUCKETS_UNLIKE_RECORDS):
                report.differences.append(
                    f"bucket_totals {wallet_id} {format_instant(bucket)} "
                    "differs from the read model's records"
                )
    return report


TableRecords = dict[RecordKey, tuple[StoredRecord, int]]


def _scan(
    dynamodb: "DynamoDBClient", table_name: str, segments: int, *, with_records: bool
) -> tuple[Totals, TableRecords]:
    """The table's aggregates by key and, `with_records`, every record item by (wallet,
    request id) with its aggregate shard, from one scan."""
    totals: Totals = {}
    found: TableRecords = {}

    def add_aggregates(items: list[Item]) -> None:
        for image in map(t.aggregate_from_item, items):
            if image is not None:
                totals[image.key] = (image.amount, image.record_count)

    def add_records(items: list[Item]) -> None:
        for record_item in map(t.record_from_item, items):
            deposit = record_item.record.deposit
            found[(deposit.wallet_id, deposit.request_id)] = (record_item.record, record_item.shard)

    consumers = {t.AGGREGATE_KIND: add_aggregates}
    if with_records:
        consumers[t.RECORD_KIND] = add_records
    parallel_scan(dynamodb, table_name, segments, consumers)
    return totals, found


def _record_totals(records: TableRecords) -> Totals:
    sums: dict[ItemKey, Decimal] = defaultdict(Decimal)
    counts: dict[ItemKey, int] = defaultdict(int)
    with exact_arithmetic():
        for record, shard in records.values():
            key = (record.deposit.wallet_id, record.deposit.bucket, shard)
            sums[key] += record.deposit.amount
            counts[key] += 1
    return {key: (sums[key], counts[key]) for key in sums}


def _read_model_records(engine: Engine) -> dict[RecordKey, RecordFields]:
    with engine.connect() as connection:
        return {
            (row.wallet_id, row.request_id): (
                row.occurred_at.astimezone(UTC),
                row.amount,
                row.recorded_at.astimezone(UTC),
            )
            for row in connection.execute(select(records_table))
        }


def _compare_records(
    report: Report,
    read_model: dict[RecordKey, RecordFields],
    table: TableRecords,
) -> None:
    for key in sorted(read_model.keys() | table.keys()):
        in_table = table.get(key)
        expected = None
        if in_table is not None:
            record = in_table[0]
            expected = (record.deposit.occurred_at, record.deposit.amount, record.recorded_at)
        found = read_model.get(key)
        if found != expected:
            wallet_id, request_id = key
            report.differences.append(
                f"record {wallet_id} {request_id!r}: read model {_show_record(found)}, "
                f"table {_show_record(expected)}"
            )


def _show_record(row: RecordFields | None) -> str:
    if row is None:
        return "missing"
    occurred_at, amount, recorded_at = row
    return f"{amount:f} at {occurred_at.isoformat()} (recorded {recorded_at.isoformat()})"


def _read_model(engine: Engine) -> Totals:
    with engine.connect() as connection:
        return {
            (row.wallet_id, row.bucket.astimezone(UTC), row.shard): (row.amount, row.record_count)
            for row in connection.execute(select(shard_aggregates))
        }


def _compare(report: Report, left_name: str, left: Totals, right_name: str, right: Totals) -> None:
    for key in sorted(left.keys() | right.keys()):
        if left.get(key) != right.get(key):
            wallet_id, bucket, shard = key
            report.differences.append(
                f"{wallet_id} {format_instant(bucket)} shard {shard}: "
                f"{left_name} {_show(left.get(key))}, {right_name} {_show(right.get(key))}"
            )


def _show(totals: tuple[Decimal, int] | None) -> str:
    if totals is None:
        return "missing"
    amount, count = totals
    return f"{amount:f} from {count} records"
