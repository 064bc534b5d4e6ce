"""`wallet reconcile`: does the read model equal the DynamoDB aggregates, and (with
--records) do the aggregates equal the records they came from? Run it after `wallet update`
has caught up: a read model that lags shows as differences."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, text

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.read_model import shard_aggregates
from services.ledger.adapters.table_scan import Item, parallel_scan
from services.ledger.domain.money import exact_arithmetic

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
    table = _aggregates(dynamodb, table_name, segments)
    report.aggregates = len(table)
    _compare(report, "read model", _read_model(engine), "table", table)
    with engine.connect() as connection:
        for wallet_id, bucket in connection.execute(_INCONSISTENT_BUCKETS):
            report.differences.append(
                f"bucket_totals {wallet_id} {bucket.astimezone(UTC):%Y-%m-%dT%H:%MZ} "
                "differs from its shards"
            )
        for wallet_id, day in connection.execute(_INCONSISTENT_DAYS):
            report.differences.append(f"day_totals {wallet_id} {day} differs from its buckets")
    if check_records:
        records = _record_totals(dynamodb, table_name, segments)
        report.records = sum(count for _, count in records.values())
        _compare(report, "aggregates", table, "records", records)
    return report


def _aggregates(dynamodb: "DynamoDBClient", table_name: str, segments: int) -> Totals:
    totals: Totals = {}

    def add(items: list[Item]) -> None:
        for image in map(t.aggregate_from_item, items):
            if image is not None:
                totals[image.key] = (image.amount, image.record_count)

    parallel_scan(dynamodb, table_name, t.AGGREGATE_KIND, segments, add)
    return totals


def _record_totals(dynamodb: "DynamoDBClient", table_name: str, segments: int) -> Totals:
    sums: dict[ItemKey, Decimal] = defaultdict(Decimal)
    counts: dict[ItemKey, int] = defaultdict(int)

    def add(items: list[Item]) -> None:
        with exact_arithmetic():
            for record_item in map(t.record_from_item, items):
                deposit = record_item.record.deposit
                key = (deposit.wallet_id, deposit.bucket, record_item.shard)
                sums[key] += deposit.amount
                counts[key] += 1

    parallel_scan(dynamodb, table_name, t.RECORD_KIND, segments, add)
    return {key: (sums[key], counts[key]) for key in sums}


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
                f"{wallet_id} {bucket:%Y-%m-%dT%H:%MZ} shard {shard}: "
                f"{left_name} {_show(left.get(key))}, {right_name} {_show(right.get(key))}"
            )


def _show(totals: tuple[Decimal, int] | None) -> str:
    if totals is None:
        return "missing"
    amount, count = totals
    return f"{amount:f} from {count} records"
