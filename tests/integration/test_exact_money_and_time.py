"""Exact sums, late records and sub-microsecond timestamps, end to end."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest

from services.ledger.adapters import ledger_table as t
from services.ledger.domain.buckets import format_instant
from tests.integration.conftest import (
    Scan,
    aggregates,
    deposit_request,
    records,
    timestamp,
    total_amount,
    total_count,
)
from wallet.v1 import command_pb2_grpc

BUCKET = datetime(2024, 3, 10, 14, 0, tzinfo=UTC)


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
    # Exactly 1, not 0.9999999999999999 (the float sum); the items hold strings.
    assert all("e" not in item[t.AMOUNT]["N"].lower() for item in items)


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
