"""The two servicers over in-memory stores, with a fixed clock: a deposit's way from a
request to a status or a record, and a history's from a request to its points, in
milliseconds (the fast tier: `make test-fast`)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.command.servicer import WalletCommandServicer
from services.query.servicer import WalletQueryServicer
from tests.unit.fakes import Aborted, InMemoryLedger, servicer_context
from wallet.v1 import command_pb2, query_pb2

NOW = datetime(2019, 10, 5, 15, 2, 30, tzinfo=UTC)
AS_OF = NOW - timedelta(seconds=1)
# A deposit through the command servicer: its answer, or Aborted.
Recorder = Callable[[command_pb2.RecordTransactionRequest], command_pb2.RecordTransactionResponse]


def timestamp(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def deposit(
    request_id: str = "deposit-0001",
    amount: str = "1.1",
    occurred_at: str = "2019-10-05T14:48:01+01:00",
    wallet_id: str = "alice",
) -> command_pb2.RecordTransactionRequest:
    return command_pb2.RecordTransactionRequest(
        wallet_id=wallet_id,
        request_id=request_id,
        occurred_at=timestamp(occurred_at),
        amount=amount,
    )


def history_request(time_zone: str = "") -> query_pb2.GetBalanceHistoryRequest:
    """The README's example range: 12:00Z to 14:00Z on the day of its deposit."""
    return query_pb2.GetBalanceHistoryRequest(
        wallet_id="alice",
        start=timestamp("2019-10-05T12:00:00Z"),
        end=timestamp("2019-10-05T14:00:00Z"),
        time_zone=time_zone,
    )


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger(clock=lambda: NOW, as_of=AS_OF)


@pytest.fixture
def record(
    ledger: InMemoryLedger,
) -> Recorder:
    servicer = WalletCommandServicer(ledger, clock=lambda: NOW)
    return lambda request: servicer.RecordTransaction(request, servicer_context())


@pytest.fixture
def query(ledger: InMemoryLedger) -> WalletQueryServicer:
    return WalletQueryServicer(ledger, clock=lambda: NOW)


def test_a_deposit_is_recorded_once_then_replayed_and_a_changed_one_refused(
    record: Recorder,
) -> None:
    first = record(deposit())
    assert not first.replayed
    assert (first.record.wallet_id, first.record.request_id) == ("alice", "deposit-0001")
    assert first.record.amount == "1.1"
    assert first.record.occurred_at.ToJsonString() == "2019-10-05T13:48:01Z"
    assert first.record.recorded_at.ToDatetime(tzinfo=UTC) == NOW

    again = record(deposit(amount="1.10"))  # the same amount, spelled otherwise
    assert again.replayed
    assert again.record == first.record

    with pytest.raises(Aborted) as refused:
        record(deposit(amount="2"))
    assert refused.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert not record(deposit(wallet_id="bob")).replayed, "keys are scoped per wallet"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (deposit(amount="0"), "amount"),
        (deposit(amount="1.0000000000000000001"), "amount"),
        (deposit(wallet_id="a#b"), "wallet_id"),
        (deposit(request_id=" key"), "request_id"),
        (deposit(occurred_at="2019-10-05T15:08:00Z"), "occurred_at"),  # NOW + 5.5 minutes
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field_and_records_nothing(
    record: Recorder,
    ledger: InMemoryLedger,
    request_: command_pb2.RecordTransactionRequest,
    field: str,
) -> None:
    with pytest.raises(Aborted) as refused:
        record(request_)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(refused.value.violations) == [field]
    assert len(ledger) == 0


@pytest.mark.parametrize(
    ("failure", "code"),
    [("unavailable", grpc.StatusCode.UNAVAILABLE), ("contended", grpc.StatusCode.ABORTED)],
)
def test_a_failing_write_store_answers_a_status_to_retry_on(
    record: Recorder, ledger: InMemoryLedger, failure: str, code: grpc.StatusCode
) -> None:
    setattr(ledger, failure, True)
    with pytest.raises(Aborted) as refused:
        record(deposit())
    assert refused.value.code == code


def test_an_unavailable_read_store_is_unavailable(
    ledger: InMemoryLedger, query: WalletQueryServicer
) -> None:
    ledger.unavailable = True
    with pytest.raises(Aborted) as balance:
        query.GetBalance(query_pb2.GetBalanceRequest(wallet_id="alice"), servicer_context())
    with pytest.raises(Aborted) as history:
        query.GetBalanceHistory(history_request(), servicer_context())
    assert balance.value.code == history.value.code == grpc.StatusCode.UNAVAILABLE


def test_the_readmes_history_in_paris_time(
    record: Recorder,
    query: WalletQueryServicer,
) -> None:
    record(deposit())
    history = query.GetBalanceHistory(history_request("Europe/Paris"), servicer_context())
    assert [
        (point.time.ToJsonString(), point.utc_offset.seconds, point.balance, point.change)
        for point in history.points
    ] == [
        ("2019-10-05T12:00:00Z", 7200, "0", "0"),
        ("2019-10-05T13:00:00Z", 7200, "0", "0"),
        ("2019-10-05T14:00:00Z", 7200, "1.1", "1.1"),
    ]
    assert history.as_of.ToDatetime(tzinfo=UTC) == AS_OF


def test_the_balance_now_is_at_the_next_15_minute_boundary_of_the_clock(
    record: Recorder,
    query: WalletQueryServicer,
) -> None:
    record(deposit())
    # After the clock (15:02:30) but before its boundary: in the answer, which is for 15:15.
    record(deposit(request_id="deposit-0002", amount="0.2", occurred_at="2019-10-05T15:04:00Z"))
    answer = query.GetBalance(query_pb2.GetBalanceRequest(wallet_id="alice"), servicer_context())
    assert answer.balance == "1.3"
    assert answer.at.ToJsonString() == "2019-10-05T15:15:00Z"
    assert answer.as_of.ToDatetime(tzinfo=UTC) == AS_OF
