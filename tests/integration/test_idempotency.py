"""Request ids are idempotency keys: the same payload replays, another payload is refused,
and neither changes a single item."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest

from services.ledger.adapters import ledger_table as t
from tests.integration.conftest import (
    Scan,
    aggregates,
    deposit_request,
    records,
    total_amount,
    total_count,
)
from wallet.v1 import command_pb2, command_pb2_grpc

OCCURRED = datetime(2019, 10, 5, 13, 48, 1, 250000, tzinfo=UTC)


def original_request(**changes: object) -> command_pb2.RecordTransactionRequest:
    fields: dict[str, object] = {
        "wallet_id": "w1",
        "request_id": "req-1",
        "occurred_at": OCCURRED,
        "amount": "1.10",
    }
    fields.update(changes)
    return deposit_request(**fields)  # type: ignore[arg-type]


def test_same_request_id_and_payload_records_once(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    first = command_stub.RecordTransaction(original_request())
    after_first = scan()

    second = command_stub.RecordTransaction(original_request())
    third = command_stub.RecordTransaction(original_request(amount="1.1"))  # same value

    assert (first.replayed, second.replayed, third.replayed) == (False, True, True)
    assert second.record == first.record
    assert third.record == first.record
    assert first.record.amount == "1.1"
    assert first.record.HasField("recorded_at")
    assert scan() == after_first
    assert len(records(after_first)) == 1
    assert total_count(aggregates(after_first)) == 1
    assert total_amount(aggregates(after_first)) == Decimal("1.1")


def test_another_request_id_with_the_same_payload_is_another_deposit(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    """Idempotency is by request id, not by payload: two equal deposits both count."""
    first = command_stub.RecordTransaction(original_request(request_id="req-1"))
    second = command_stub.RecordTransaction(original_request(request_id="req-2"))
    assert (first.replayed, second.replayed) == (False, False)
    items = scan()
    assert len(records(items)) == 2
    assert total_amount(aggregates(items)) == Decimal("2.2")
    assert total_count(aggregates(items)) == 2


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"amount": "1.11"}, id="another amount"),
        pytest.param({"amount": "2.2"}, id="double the amount"),
        pytest.param({"occurred_at": OCCURRED + timedelta(seconds=1)}, id="another datetime"),
        pytest.param({"occurred_at": OCCURRED + timedelta(days=1)}, id="another bucket"),
        pytest.param({"wallet_id": "w2"}, id="another wallet"),
    ],
)
def test_same_request_id_with_another_payload_is_already_exists(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan, changes: dict[str, object]
) -> None:
    first = command_stub.RecordTransaction(original_request())
    before = scan()

    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(original_request(**changes))

    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert scan() == before
    # The refused payload did not replace the original: it still replays.
    again = command_stub.RecordTransaction(original_request())
    assert again.replayed
    assert again.record == first.record
    assert scan() == before


def test_record_item_holds_the_payload(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    response = command_stub.RecordTransaction(original_request())
    (item,) = records(scan())
    assert item[t.WALLET_ID]["S"] == "w1"
    assert item[t.REQUEST_ID]["S"] == "req-1"
    assert item[t.AMOUNT]["N"] == "1.1"
    assert item[t.OCCURRED_AT]["S"] == "2019-10-05T13:48:01.250000Z"
    assert item[t.BUCKET]["S"] == "2019-10-05T13:45:00.000000Z"
    recorded_at = response.record.recorded_at.ToDatetime(tzinfo=UTC)
    assert item[t.RECORDED_AT]["S"] == recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(recorded_at - datetime.now(UTC)) < timedelta(minutes=1)
