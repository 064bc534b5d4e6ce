"""Helpers for the updater's tests: deposits written through the real write store, the
ledger table's aggregate items, the PostgreSQL read model as plain values, and the check
that the one is an exact projection of the other."""

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

import psycopg

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.read_store import PostgresReadStore
from services.ledger.adapters.write_store import DynamoWriteStore
from services.ledger.domain.buckets import parse_instant
from services.ledger.domain.history import hour_grid
from services.ledger.domain.records import Deposit, Recorded
from services.updater.reconcile import reconcile
from tests.history_oracle import RawRecord, exact_sum, expected_history

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ItemKey = tuple[str, datetime, int]
BucketKey = tuple[str, datetime]
DayKey = tuple[str, date]
RecordKey = tuple[str, str]
# (occurred_at, amount, recorded_at), instants in UTC.
RecordRow = tuple[datetime, Decimal, datetime]

# A past day, so every deposit is well clear of the "not in the future" rule.
START = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
SHARD_COUNT = 4
# Where in a day make_deposits puts deposits: the first and last buckets and two between.
BUCKETS_OF_A_DAY = [
    timedelta(minutes=minutes) for minutes in (0, 9 * 60 + 15, 14 * 60 + 30, 23 * 60 + 45)
]
BUCKET_MICROSECONDS = 15 * 60 * 10**6
UTC_ZONE = ZoneInfo("UTC")


def make_deposits(
    count: int,
    *,
    prefix: str,
    wallets: int = 4,
    days: int = 3,
    seed: int = 0,
    start: datetime = START,
) -> list[Deposit]:
    """`count` deposits with fresh request ids and positive amounts in cents, spread over a
    few wallets and days, in a few buckets per day (the day's first and last among them), so
    that aggregate items collect several records."""
    rng = random.Random(f"{prefix}-{seed}")
    deposits = []
    for index in range(count):
        bucket = start + timedelta(days=rng.randrange(days)) + rng.choice(BUCKETS_OF_A_DAY)
        deposits.append(
            Deposit(
                wallet_id=f"wallet-{rng.randrange(wallets)}",
                request_id=f"{prefix}-{index:05d}-{uuid.uuid4().hex[:8]}",
                occurred_at=bucket + timedelta(microseconds=rng.randrange(BUCKET_MICROSECONDS)),
                amount=Decimal(rng.randint(1, 10**7)) / 100,
            )
        )
    return deposits


def write_deposits(
    dynamodb: "DynamoDBClient", table_name: str, deposits: Iterable[Deposit], workers: int = 8
) -> None:
    """Records the deposits through the real write store (each one a record item plus an
    ADD on its aggregate item), several at a time."""
    store = DynamoWriteStore(dynamodb, table_name, SHARD_COUNT)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(store.record, deposits))
    not_recorded = [outcome for outcome in outcomes if not isinstance(outcome, Recorded)]
    assert not not_recorded, f"deposits not recorded as new: {not_recorded[:3]}"


def dynamodb_aggregates(
    dynamodb: "DynamoDBClient", table_name: str
) -> dict[ItemKey, tuple[Decimal, int]]:
    """(amount, record_count) of every aggregate item of the table, by (wallet, bucket,
    shard), from a strongly consistent scan."""
    aggregates: dict[ItemKey, tuple[Decimal, int]] = {}
    request: dict[str, Any] = {"TableName": table_name, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        for item in page.get("Items", []):
            if item[t.KIND]["S"] != t.AGGREGATE_KIND:
                continue
            key = (
                item[t.WALLET_ID]["S"],
                parse_instant(item[t.BUCKET]["S"]),
                int(item[t.SHARD]["N"]),
            )
            assert key not in aggregates, f"two aggregate items for {key}"
            aggregates[key] = (t.aggregate_amount(item), int(item[t.RECORD_COUNT]["N"]))
        if "LastEvaluatedKey" not in page:
            return aggregates
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def dynamodb_records(dynamodb: "DynamoDBClient", table_name: str) -> dict[RecordKey, RecordRow]:
    """Every record item of the table, by (wallet, request id), from a consistent scan."""
    records: dict[RecordKey, RecordRow] = {}
    request: dict[str, Any] = {"TableName": table_name, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        for item in page.get("Items", []):
            if item[t.KIND]["S"] == t.RECORD_KIND:
                records[(item[t.WALLET_ID]["S"], item[t.REQUEST_ID]["S"])] = (
                    parse_instant(item[t.OCCURRED_AT]["S"]),
                    Decimal(item[t.AMOUNT]["N"]),
                    parse_instant(item[t.RECORDED_AT]["S"]),
                )
        if "LastEvaluatedKey" not in page:
            return records
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stream_arn(dynamodb: "DynamoDBClient", table_name: str) -> str:
    arn = dynamodb.describe_table(TableName=table_name)["Table"].get("LatestStreamArn")
    assert arn, f"table {table_name} has no stream"
    return arn


class Checkpoint(NamedTuple):
    """A stream_checkpoints row: the next record to read is the one at sequence_number
    when at_sequence_number, else the one after it."""

    sequence_number: str | None
    finished: bool
    at_sequence_number: bool


@dataclass(frozen=True)
class ReadModel:
    """Every row of the read model's tables, as plain values (instants in UTC)."""

    shards: dict[ItemKey, tuple[Decimal, int]]
    buckets: dict[BucketKey, Decimal]
    days: dict[DayKey, tuple[Decimal, Decimal]]
    records: dict[RecordKey, RecordRow]
    checkpoints: dict[tuple[str, str], Checkpoint]
    as_of: datetime | None

    def totals(self) -> tuple[object, ...]:
        """The projected values, without checkpoints and pass time."""
        return (self.shards, self.buckets, self.days, self.records)

    def is_empty(self) -> bool:
        projected = self.shards or self.buckets or self.days or self.records
        return not (projected or self.checkpoints) and self.as_of is None


def read_model(database_url: str) -> ReadModel:
    with psycopg.connect(database_url) as connection:
        shards = {
            (wallet, bucket.astimezone(UTC), shard): (amount, count)
            for wallet, bucket, shard, amount, count in connection.execute(
                "SELECT wallet_id, bucket, shard, amount, record_count FROM shard_aggregates"
            )
        }
        buckets = {
            (wallet, bucket.astimezone(UTC)): amount
            for wallet, bucket, amount in connection.execute(
                "SELECT wallet_id, bucket, amount FROM bucket_totals"
            )
        }
        days = {
            (wallet, day): (amount, balance)
            for wallet, day, amount, balance in connection.execute(
                "SELECT wallet_id, day, amount, balance_after FROM day_totals"
            )
        }
        records = {
            (wallet, request_id): (occurred_at.astimezone(UTC), amount, recorded_at.astimezone(UTC))
            for wallet, request_id, occurred_at, amount, recorded_at in connection.execute(
                "SELECT wallet_id, request_id, occurred_at, amount, recorded_at FROM records"
            )
        }
        checkpoints = {
            (arn, shard_id): Checkpoint(sequence, finished, at_sequence_number)
            for arn, shard_id, sequence, finished, at_sequence_number in connection.execute(
                "SELECT stream_arn, shard_id, sequence_number, finished, at_sequence_number"
                " FROM stream_checkpoints"
            )
        }
        status = connection.execute(
            "SELECT id, last_pass_finished_at FROM projection_status"
        ).fetchall()
    assert [row[0] for row in status] == [1], f"projection_status must hold one row: {status}"
    as_of = status[0][1]
    return ReadModel(shards, buckets, days, records, checkpoints, as_of and as_of.astimezone(UTC))


def bucket_sums(shards: dict[ItemKey, tuple[Decimal, int]]) -> dict[BucketKey, Decimal]:
    amounts: dict[BucketKey, list[Decimal]] = defaultdict(list)
    for (wallet, bucket, _), (amount, _) in shards.items():
        amounts[(wallet, bucket)].append(amount)
    return {key: exact_sum(values) for key, values in amounts.items()}


def record_bucket_sums(records: dict[RecordKey, RecordRow]) -> dict[BucketKey, Decimal]:
    amounts: dict[BucketKey, list[Decimal]] = defaultdict(list)
    for (wallet, _), (occurred_at, amount, _) in records.items():
        offset = (occurred_at - START) % timedelta(minutes=15)
        amounts[(wallet, occurred_at - offset)].append(amount)
    return {key: exact_sum(values) for key, values in amounts.items()}


def day_sums(buckets: dict[BucketKey, Decimal]) -> dict[DayKey, tuple[Decimal, Decimal]]:
    """(the day's sum, the balance at its end) per wallet and UTC day that has buckets."""
    amounts: dict[DayKey, list[Decimal]] = defaultdict(list)
    for (wallet, bucket), amount in buckets.items():
        amounts[(wallet, bucket.astimezone(UTC).date())].append(amount)
    days: dict[DayKey, tuple[Decimal, Decimal]] = {}
    balances: dict[str, Decimal] = defaultdict(Decimal)
    for wallet, day in sorted(amounts):
        amount = exact_sum(amounts[(wallet, day)])
        balances[wallet] = exact_sum([balances[wallet], amount])
        days[(wallet, day)] = (amount, balances[wallet])
    return days


def assert_consistent(model: ReadModel) -> None:
    """bucket_totals is the sum of the bucket's shards; day_totals the sum of the day's
    buckets, with the running balance per wallet."""
    assert model.buckets == bucket_sums(model.shards), "bucket_totals != sum of shard_aggregates"
    assert model.days == day_sums(model.buckets), "day_totals != sums of bucket_totals"


def assert_exact(dynamodb: "DynamoDBClient", table_name: str, database_url: str) -> ReadModel:
    """The read model is exactly the table's aggregate and record items, with consistent
    derived totals, after a finished pass. Returns it."""
    expected = dynamodb_aggregates(dynamodb, table_name)
    model = read_model(database_url)
    missing = expected.keys() - model.shards.keys()
    extra = model.shards.keys() - expected.keys()
    wrong = {
        key: (model.shards[key], value)
        for key, value in expected.items()
        if key in model.shards and model.shards[key] != value
    }
    assert not missing, f"{len(missing)} items missing from the read model: {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} items in the read model, not in the table: {sorted(extra)[:3]}"
    assert not wrong, f"{len(wrong)} items differ (read model, table): {list(wrong.items())[:3]}"
    expected_records = dynamodb_records(dynamodb, table_name)
    if model.records != expected_records:
        differ = {
            key: (model.records.get(key), expected_records.get(key))
            for key in model.records.keys() | expected_records.keys()
            if model.records.get(key) != expected_records.get(key)
        }
        raise AssertionError(
            f"{len(differ)} records differ (read model, table): {sorted(differ.items())[:3]}"
        )
    assert model.buckets == record_bucket_sums(model.records), "bucket_totals != sum of records"
    assert_consistent(model)
    assert model.as_of is not None, "no finished pass recorded"
    return model


def total_records(model: ReadModel) -> int:
    return sum(count for _, count in model.shards.values())


def reconcile_differences(
    dynamodb: "DynamoDBClient", table_name: str, database_url: str
) -> list[str]:
    """What `wallet reconcile --records` reports (nothing when the read model is exact)."""
    engine = create_database_engine(database_url, pool_size=1)
    try:
        return reconcile(dynamodb, table_name, engine, check_records=True).differences
    finally:
        engine.dispose()


def assert_history_exact(
    database_url: str,
    deposits: Iterable[Deposit],
    start: datetime,
    end: datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> None:
    """The read store answers every wallet's history over [start, end] in `zone` as the
    oracle computes it from the deposits."""
    records = [RawRecord(d.wallet_id, d.occurred_at, d.amount) for d in deposits]
    bounds = hour_grid(start, end, zone).bound_seconds
    engine = create_database_engine(database_url, pool_size=1)
    try:
        store = PostgresReadStore(engine)
        for wallet in sorted({record.wallet_id for record in records}):
            answered = [
                (Decimal(balance), Decimal(change))
                for balance, change in store.history(wallet, bounds).points
            ]
            expected = expected_history(records, wallet, start, end, zone)
            assert answered == [(point.balance, point.change) for point in expected], wallet
    finally:
        engine.dispose()
