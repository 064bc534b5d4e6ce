"""Request ids are idempotency keys scoped per wallet: in one wallet the same payload
replays, another payload is refused, and neither changes a single item; in another wallet
the same key is another, independent deposit."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest

from services.ledger.adapters import ledger_table as t
from tests.integration.conftest import (
    Item,
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


def wallet_totals(items: list[Item]) -> dict[str, tuple[Decimal, int]]:
    """(sum, count) of each wallet's aggregate items."""
    by_wallet: dict[str, list[Item]] = defaultdict(list)
    for item in aggregates(items):
        by_wallet[item[t.WALLET_ID]["S"]].append(item)
    return {wallet: (total_amount(mine), total_count(mine)) for wallet, mine in by_wallet.items()}


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="same payload"),
        pytest.param({"amount": "7.25", "occurred_at": OCCURRED + timedelta(days=1)}, id="other"),
    ],
)
def test_the_same_request_id_in_another_wallet_is_an_independent_deposit(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan, changes: dict[str, object]
) -> None:
    """Before the fix, keyed by the request id alone, mallory's deposit with key
    invoice-2026-0001 made alice's later deposit with that key fail (ALREADY_EXISTS), and
    told alice the key existed. Now each wallet's key is its own."""
    key = "invoice-2026-0001"
    mallory = command_stub.RecordTransaction(original_request(wallet_id="mallory", request_id=key))
    alice_request = original_request(wallet_id="alice", request_id=key, **changes)

    alice = command_stub.RecordTransaction(alice_request)

    assert (mallory.replayed, alice.replayed) == (False, False)
    assert (alice.record.wallet_id, alice.record.request_id) == ("alice", key)
    assert alice.record.amount == ("7.25" if changes else "1.1")
    items = scan()
    assert sorted((item[t.WALLET_ID]["S"], item[t.REQUEST_ID]["S"]) for item in records(items)) == [
        ("alice", key),
        ("mallory", key),
    ]
    assert wallet_totals(items) == {
        "mallory": (Decimal("1.1"), 1),
        "alice": (Decimal(alice.record.amount), 1),
    }
    # Each wallet's key replays its own record, and a conflict in one leaves the other be.
    assert command_stub.RecordTransaction(alice_request).record == alice.record
    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(
            original_request(wallet_id="mallory", request_id=key, amount="9")
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    again = command_stub.RecordTransaction(alice_request)
    assert again.replayed
    assert again.record == alice.record
    assert scan() == items


def test_a_key_used_in_many_wallets_counts_once_in_each(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    wallets = [f"tenant-{index}" for index in range(5)]
    for _ in range(2):  # the second round replays
        for wallet in wallets:
            command_stub.RecordTransaction(original_request(wallet_id=wallet, request_id="k"))
    items = scan()
    assert len(records(items)) == len(wallets)
    assert wallet_totals(items) == {wallet: (Decimal("1.1"), 1) for wallet in wallets}
