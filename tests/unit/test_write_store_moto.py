"""The write store's record / replay / conflict decision against moto's DynamoDB.

moto is fast but not DynamoDB: the integration tests repeat the important cases on
DynamoDB Local, and concurrency is only tested there.
"""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.write_store import DynamoWriteStore
from services.ledger.domain.buckets import format_instant
from services.ledger.domain.money import exact_arithmetic
from services.ledger.domain.records import (
    Conflicting,
    Deposit,
    Recorded,
    Replayed,
    StoredRecord,
    new_deposit,
)
from tests.unit.conftest import MOTO_TABLE

TABLE = MOTO_TABLE
SHARDS = 8
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
OCCURRED = datetime(2024, 6, 1, 11, 7, 30, 5, tzinfo=UTC)


class SteppingClock:
    """Each call is one second later than the previous one."""

    def __init__(self, start: datetime) -> None:
        self.next = start

    def __call__(self) -> datetime:
        now, self.next = self.next, self.next + timedelta(seconds=1)
        return now


@pytest.fixture
def client(moto_dynamodb: DynamoDBClient) -> DynamoDBClient:
    return moto_dynamodb


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(NOW)


@pytest.fixture
def store(client: DynamoDBClient, clock: SteppingClock) -> DynamoWriteStore:
    return DynamoWriteStore(client, TABLE, SHARDS, clock=clock, sleep=lambda _: None)


def make_deposit(
    *,
    wallet_id: str = "w1",
    request_id: str = "req-1",
    occurred_at: datetime = OCCURRED,
    amount: str = "1.10",
) -> Deposit:
    return new_deposit(
        wallet_id=wallet_id,
        request_id=request_id,
        occurred_at=occurred_at,
        amount=amount,
        now=NOW,
    )


def scan(client: DynamoDBClient) -> list[dict[str, Any]]:
    items = client.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item[t.PARTITION_KEY]["S"], item[t.SORT_KEY]["S"]))


def aggregates(client: DynamoDBClient) -> list[dict[str, Any]]:
    return [item for item in scan(client) if item[t.KIND]["S"] == t.AGGREGATE_KIND]


def test_first_call_records_the_deposit_and_its_aggregate(
    store: DynamoWriteStore, client: DynamoDBClient
) -> None:
    deposit = make_deposit()
    outcome = store.record(deposit)

    assert outcome == Recorded(StoredRecord(deposit, recorded_at=NOW))
    items = scan(client)
    assert len(items) == 2
    record = client.get_item(TableName=TABLE, Key=t.record_key("w1", "req-1"))["Item"]
    assert record[t.AMOUNT] == {"N": "1.1"}
    assert record[t.WALLET_ID] == {"S": "w1"}
    assert record[t.OCCURRED_AT] == {"S": "2024-06-01T11:07:30.000005Z"}
    assert record[t.BUCKET] == {"S": "2024-06-01T11:00:00.000000Z"}
    assert record[t.RECORDED_AT] == {"S": "2024-06-01T12:00:00.000000Z"}
    assert record[t.FINGERPRINT] == {"S": deposit.fingerprint}
    shard = deposit.shard(SHARDS)
    aggregate = client.get_item(TableName=TABLE, Key=t.aggregate_key("w1", deposit.bucket, shard))[
        "Item"
    ]
    assert t.aggregate_amount(aggregate) == Decimal("1.1")
    assert (aggregate[t.AMOUNT_WHOLE], aggregate[t.AMOUNT_ATTO]) == (
        {"N": "1"},
        {"N": "100000000000000000"},
    )
    assert t.AMOUNT not in aggregate
    assert aggregate[t.RECORD_COUNT] == {"N": "1"}
    assert aggregate[t.SHARD] == {"N": str(shard)}
    assert aggregate[t.BUCKET] == record[t.BUCKET]


def test_same_payload_replays_the_original_record(
    store: DynamoWriteStore, client: DynamoDBClient
) -> None:
    original = store.record(make_deposit())
    before = scan(client)

    # Same payload spelled differently: "1.1" for "1.10", the instant in another offset.
    again = make_deposit(
        amount="1.1", occurred_at=OCCURRED.astimezone(timezone(timedelta(hours=-7)))
    )
    outcome = store.record(again)

    assert isinstance(original, Recorded)
    assert outcome == Replayed(original.record)
    assert outcome.record.recorded_at == NOW  # the first call's, not this call's clock
    assert scan(client) == before


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"amount": "1.11"}, id="amount"),
        pytest.param({"occurred_at": OCCURRED + timedelta(microseconds=1)}, id="occurred_at"),
    ],
)
def test_other_payload_conflicts_and_changes_nothing(
    store: DynamoWriteStore, client: DynamoDBClient, changes: dict[str, Any]
) -> None:
    original = store.record(make_deposit())
    before = scan(client)

    outcome = store.record(make_deposit(**changes))

    assert isinstance(original, Recorded)
    assert outcome == Conflicting(original.record)
    assert scan(client) == before


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="same payload"),
        pytest.param({"amount": "7"}, id="other payload"),
    ],
)
def test_the_same_request_id_in_another_wallet_is_another_deposit(
    store: DynamoWriteStore, client: DynamoDBClient, changes: dict[str, Any]
) -> None:
    """Request ids are scoped per wallet: neither wallet's key blocks or answers for the
    other's, and each deposit has its own record and counts in its own wallet."""
    mallory = store.record(make_deposit(wallet_id="mallory", request_id="invoice-2026-0001"))
    alice_deposit = make_deposit(wallet_id="alice", request_id="invoice-2026-0001", **changes)

    alice = store.record(alice_deposit)

    assert isinstance(mallory, Recorded)
    assert alice == Recorded(StoredRecord(alice_deposit, recorded_at=NOW + timedelta(seconds=1)))
    for wallet in ("mallory", "alice"):
        key = t.record_key(wallet, "invoice-2026-0001")
        assert client.get_item(TableName=TABLE, Key=key)["Item"][t.WALLET_ID] == {"S": wallet}
    totals = {item[t.WALLET_ID]["S"]: t.aggregate_amount(item) for item in aggregates(client)}
    assert totals == {"mallory": Decimal("1.1"), "alice": alice_deposit.amount}
    # Each replays on its own.
    assert store.record(alice_deposit) == Replayed(alice.record)
    assert store.record(make_deposit(wallet_id="mallory", request_id="invoice-2026-0001")) == (
        Replayed(mallory.record)
    )


def test_distinct_requests_add_up_in_the_aggregates(
    store: DynamoWriteStore, client: DynamoDBClient
) -> None:
    amounts = ["0.1", "0.2", "0.3", "1e-18", "12345678901234567.5"]
    for index, amount in enumerate(amounts):
        outcome = store.record(make_deposit(request_id=f"req-{index}", amount=amount))
        assert isinstance(outcome, Recorded)
    # Another bucket and another wallet must not mix in.
    store.record(make_deposit(request_id="other-bucket", occurred_at=OCCURRED - timedelta(hours=1)))
    store.record(make_deposit(request_id="other-wallet", wallet_id="w2"))

    bucket = make_deposit().bucket
    mine = [
        item
        for item in aggregates(client)
        if item[t.WALLET_ID]["S"] == "w1" and item[t.BUCKET]["S"] == format_instant(bucket)
    ]
    with exact_arithmetic():
        total = sum((t.aggregate_amount(item) for item in mine), Decimal(0))
    assert total == Decimal("12345678901234568.100000000000000001")
    assert sum(int(item[t.RECORD_COUNT]["N"]) for item in mine) == len(amounts)
    assert len(aggregates(client)) == len(mine) + 2
