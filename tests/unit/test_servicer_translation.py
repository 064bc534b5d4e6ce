"""Translation between protobuf messages and the domain (services.platform.proto_time and the
command servicer's record_message)."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.command.servicer import record_message
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.records import Deposit, StoredRecord
from services.platform.proto_time import (
    datetime_to_timestamp,
    optional_timestamp,
    required_timestamp,
    timestamp_to_datetime,
)
from wallet.v1 import command_pb2

EPOCH_2019 = int(datetime(2019, 10, 5, 13, 48, 1, tzinfo=UTC).timestamp())


def test_timestamp_becomes_utc_datetime_truncated_to_microseconds() -> None:
    result = timestamp_to_datetime(Timestamp(seconds=EPOCH_2019, nanos=123456999), "occurred_at")
    assert result == datetime(2019, 10, 5, 13, 48, 1, 123456, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)


def test_earliest_and_latest_timestamps_convert() -> None:
    earliest = timestamp_to_datetime(Timestamp(seconds=-62135596800), "t")
    latest = timestamp_to_datetime(Timestamp(seconds=253402300799, nanos=999999999), "t")
    assert earliest == datetime(1, 1, 1, tzinfo=UTC)
    assert latest == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param(Timestamp(seconds=-62135596801), id="before year 1"),
        pytest.param(Timestamp(seconds=253402300800), id="after year 9999"),
        pytest.param(Timestamp(seconds=0, nanos=-1), id="negative nanos"),
        pytest.param(Timestamp(seconds=0, nanos=1_000_000_000), id="nanos overflow"),
    ],
)
def test_invalid_timestamp_names_the_field(timestamp: Timestamp) -> None:
    with pytest.raises(InvalidInput) as raised:
        timestamp_to_datetime(timestamp, "occurred_at")
    assert [v.field for v in raised.value.violations] == ["occurred_at"]


def test_datetime_to_timestamp_uses_the_instant_not_the_wall_clock() -> None:
    in_plus_one = datetime(2019, 10, 5, 14, 48, 1, 5, tzinfo=timezone(timedelta(hours=1)))
    timestamp = datetime_to_timestamp(in_plus_one)
    assert (timestamp.seconds, timestamp.nanos) == (EPOCH_2019, 5000)
    assert timestamp_to_datetime(timestamp, "t") == in_plus_one


def test_record_message_carries_the_stored_record() -> None:
    occurred = datetime(2019, 10, 5, 13, 48, 1, 250000, tzinfo=UTC)
    recorded = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    message = record_message(
        StoredRecord(Deposit("w1", "req-1", occurred, Decimal("1.10")), recorded_at=recorded)
    )
    assert message.wallet_id == "w1"
    assert message.request_id == "req-1"
    assert message.amount == "1.1"
    assert message.occurred_at == datetime_to_timestamp(occurred)
    assert message.recorded_at.ToDatetime(tzinfo=UTC) == recorded


def test_record_message_amount_is_plain_decimal() -> None:
    deposit = Deposit("w", "r", datetime(2020, 1, 1, tzinfo=UTC), Decimal("2E+3"))
    message = record_message(StoredRecord(deposit, datetime(2020, 1, 1, tzinfo=UTC)))
    assert message.amount == "2000"


def test_optional_timestamp_tells_unset_from_the_epoch() -> None:
    unset = command_pb2.RecordTransactionRequest()
    epoch = command_pb2.RecordTransactionRequest(occurred_at=Timestamp(seconds=0))
    assert optional_timestamp(unset, "occurred_at") is None
    assert optional_timestamp(epoch, "occurred_at") == datetime(1970, 1, 1, tzinfo=UTC)


def test_required_timestamp_names_the_missing_field() -> None:
    with pytest.raises(InvalidInput) as raised:
        required_timestamp(command_pb2.RecordTransactionRequest(), "occurred_at")
    assert [v.field for v in raised.value.violations] == ["occurred_at"]
