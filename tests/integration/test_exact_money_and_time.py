"""Exact sums, late records and sub-microsecond timestamps, end to end."""

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.database import create_database_engine
from services.ledger.domain.buckets import format_instant
from services.ledger.domain.money import exact_arithmetic
from services.ledger.domain.records import Deposit
from services.platform.settings import CommandSettings
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.reconcile import reconcile
from services.updater.stream_reader import StreamReader, streams_client
from tests.integration.conftest import (
    Scan,
    aggregates,
    deposit_request,
    records,
    timestamp,
    total_amount,
    total_count,
)
from tests.updater_support import assert_exact
from wallet.v1 import command_pb2_grpc, query_pb2, query_pb2_grpc

BUCKET = datetime(2024, 3, 10, 14, 0, tzinfo=UTC)
LARGEST = "99999999999999999999.999999999999999999"
SMALLEST = "0.000000000000000001"


def test_ten_tenths_sum_to_exactly_one(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    amounts = []
    for index in range(10):
        response = command_stub.RecordTransaction(
            deposit_request(
                request_id=f"tenth-{index}",
                occurred_at=BUCKET + timedelta(minutes=index),
                amount="0.1",
            )
        )
        assert not response.replayed
        amounts.append(response.record.amount)
    assert amounts == ["0.1"] * 10
    items = aggregates(scan())
    assert {item[t.BUCKET]["S"] for item in items} == {format_instant(BUCKET)}
    assert total_amount(items) == Decimal("1.0")
    assert total_count(items) == 10
    # Exactly 1, not 0.9999999999999999 (the float sum): the items hold integers, and
    # their tenths (10^17 atto-units each) carry into exactly one unit.
    assert sum(int(item[t.AMOUNT_WHOLE]["N"]) for item in items) == 0
    assert sum(int(item[t.AMOUNT_ATTO]["N"]) for item in items) == 10**18


@pytest.mark.parametrize(
    "amount",
    [
        "99999999999999999999.999999999999999999",
        "12345678901234567890.123456789012345678",
        "0.000000000000000001",
        "99999999999999999999",
    ],
)
def test_extreme_amounts_are_stored_exactly(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan, amount: str
) -> None:
    response = command_stub.RecordTransaction(deposit_request(occurred_at=BUCKET, amount=amount))
    assert response.record.amount == amount
    items = scan()
    assert [item[t.AMOUNT]["N"] for item in records(items)] == [amount]
    assert total_amount(aggregates(items)) == Decimal(amount)


def same_shard_request_ids(prefix: str, shard_count: int) -> Iterator[str]:
    """Request ids whose deposits all add to the same aggregate shard of their bucket."""
    candidates = (f"{prefix}-{index}" for index in itertools.count())
    first = next(candidates)

    def shard(request_id: str) -> int:
        return Deposit("w", request_id, BUCKET, Decimal(1)).shard(shard_count)

    yield first
    yield from (request_id for request_id in candidates if shard(request_id) == shard(first))


def run_updater_pass(dynamodb: DynamoDBClient, table_name: str, database_url: str) -> list[str]:
    """One pass of the updater, wired as `wallet update` wires it; then what
    `wallet reconcile --records` finds wrong (nothing, when the read model is exact)."""
    engine = create_database_engine(database_url, pool_size=2)
    try:
        projection = ProjectionStore(engine)
        with projection.exclusive() as locked:
            assert locked
            Projector(StreamReader(dynamodb, streams_client(), table_name), projection).run_pass()
        return reconcile(dynamodb, table_name, engine, check_records=True).differences
    finally:
        engine.dispose()


def test_one_shard_sums_past_38_digits_exactly_through_to_the_history(
    command_stub: command_pb2_grpc.WalletCommandStub,
    query_stub: query_pb2_grpc.WalletQueryStub,
    scan: Scan,
    settings: CommandSettings,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    """Before the fix, the aggregate kept one number attribute, and a DynamoDB number holds 38
    significant digits, so LARGEST + LARGEST (39 digits) in one shard failed as INTERNAL,
    and that (wallet, bucket, shard) refused every such deposit after. Ten of the largest
    amounts, the smallest and then 1 into one bucket and one shard: all recorded, all exact."""
    wallet = "huge"
    amounts = [LARGEST] * 10 + [SMALLEST, "1"]
    request_ids = same_shard_request_ids("huge", settings.aggregate_shards)
    for index, (request_id, amount) in enumerate(zip(request_ids, amounts, strict=False)):
        response = command_stub.RecordTransaction(
            deposit_request(
                wallet_id=wallet,
                request_id=request_id,
                occurred_at=BUCKET + timedelta(minutes=index),
                amount=amount,
            )
        )
        assert not response.replayed
        assert response.record.amount == amount

    with exact_arithmetic():
        expected = sum(map(Decimal, amounts), Decimal(0))
    assert expected == Decimal("1000000000000000000000.999999999999999991")
    (aggregate,) = aggregates(scan())
    assert aggregate[t.BUCKET]["S"] == format_instant(BUCKET)
    assert aggregate[t.RECORD_COUNT]["N"] == str(len(amounts))
    assert t.aggregate_amount(aggregate) == expected

    differences = run_updater_pass(dynamodb, table_name, database_url)

    assert differences == []
    assert_exact(dynamodb, table_name, database_url)
    request = query_pb2.GetBalanceHistoryRequest(wallet_id=wallet)
    request.start.CopyFrom(timestamp(BUCKET))
    request.end.CopyFrom(timestamp(BUCKET + timedelta(hours=1)))
    history = query_stub.GetBalanceHistory(request, timeout=20)
    assert [(point.balance, point.change) for point in history.points] == [
        ("0", "0"),
        ("1000000000000000000000.999999999999999991", "1000000000000000000000.999999999999999991"),
    ]
    balance = query_stub.GetBalance(query_pb2.GetBalanceRequest(wallet_id=wallet), timeout=20)
    assert balance.balance == "1000000000000000000000.999999999999999991"


def test_late_record_lands_in_its_own_bucket(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=1)
    late = datetime(2011, 2, 3, 4, 35, 6, tzinfo=UTC)
    command_stub.RecordTransaction(deposit_request(request_id="recent", occurred_at=recent))
    response = command_stub.RecordTransaction(
        deposit_request(request_id="late", occurred_at=late, amount="7.5")
    )

    assert not response.replayed
    assert response.record.occurred_at == timestamp(late)
    items = scan()
    late_buckets = [
        item for item in aggregates(items) if item[t.BUCKET]["S"] == "2011-02-03T04:30:00.000000Z"
    ]
    assert total_amount(late_buckets) == Decimal("7.5")
    assert total_count(late_buckets) == 1
    assert total_count(aggregates(items)) == 2
    (late_record,) = [item for item in records(items) if item[t.REQUEST_ID]["S"] == "late"]
    assert late_record[t.BUCKET]["S"] == "2011-02-03T04:30:00.000000Z"


def test_nanos_are_truncated_to_microseconds_and_replay_within_the_microsecond(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    first = command_stub.RecordTransaction(
        deposit_request(occurred_at=timestamp(BUCKET, nanos=123456789))
    )
    assert first.record.occurred_at.nanos == 123456000
    assert first.record.occurred_at.seconds == timestamp(BUCKET).seconds
    before = scan()
    (item,) = records(before)
    assert item[t.OCCURRED_AT]["S"] == "2024-03-10T14:00:00.123456Z"

    same_microsecond = command_stub.RecordTransaction(
        deposit_request(occurred_at=timestamp(BUCKET, nanos=123456999))
    )
    assert same_microsecond.replayed
    assert same_microsecond.record == first.record
    assert scan() == before

    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(
            deposit_request(occurred_at=timestamp(BUCKET, nanos=123457000))
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert scan() == before


def test_record_at_the_earliest_timestamp_replays(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    """0001-01-01T00:00:00Z is a valid Timestamp (Go's zero time.Time sends it); once
    accepted, a retry of it must replay like any other."""
    earliest = datetime(1, 1, 1, tzinfo=UTC)
    first = command_stub.RecordTransaction(deposit_request(occurred_at=earliest))
    before = scan()
    again = command_stub.RecordTransaction(deposit_request(occurred_at=earliest))
    assert again.replayed
    assert again.record == first.record
    assert scan() == before
