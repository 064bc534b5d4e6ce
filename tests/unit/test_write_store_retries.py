"""The write store's retry and failure mapping, against a scripted fake client: no network,
no real sleeping."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters.ledger_table import record_from_item, record_transaction_items
from services.ledger.adapters.write_store import (
    DynamoWriteStore,
    StoreContended,
    StoreUnavailable,
)
from services.ledger.domain.records import (
    Conflicting,
    Recorded,
    Replayed,
    StoredRecord,
    new_deposit,
)
from tests.metrics_support import sample

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DEPOSIT = new_deposit(
    wallet_id="w1",
    request_id="req-1",
    occurred_at=datetime(2024, 6, 1, 11, 50, tzinfo=UTC),
    amount="2.5",
    now=NOW,
)
# The exception classes of a real client: what `client.exceptions` holds at run time.
EXCEPTIONS = boto3.client(
    "dynamodb",
    region_name="us-east-1",
    aws_access_key_id="unused",
    aws_secret_access_key="unused",
).exceptions

CONFLICT = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
NONE = {"Code": "None"}


def cancelled(*reasons: dict[str, Any]) -> ClientError:
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
        "CancellationReasons": list(reasons),
    }
    return EXCEPTIONS.TransactionCanceledException(
        response,
        "TransactWriteItems",
    )


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "TransactWriteItems")


def in_progress() -> ClientError:
    response: Any = {"Error": {"Code": "TransactionInProgressException", "Message": "in progress"}}
    return EXCEPTIONS.TransactionInProgressException(response, "TransactWriteItems")


def stored_record_item(fingerprint: str) -> dict[str, Any]:
    """DEPOSIT's record item, with the fingerprint stored in it, as a cancelled Put hands
    it back (ReturnValuesOnConditionCheckFailure: ALL_OLD)."""
    recorded_at = datetime(2024, 6, 1, 11, 55, tzinfo=UTC)
    put = record_transaction_items("ledger", DEPOSIT, 3, recorded_at)[0]["Put"]
    return {**put["Item"], "amount": {"N": "2.50"}, "fingerprint": {"S": fingerprint}}


class ScriptedClient:
    """transact_write_items raises the scripted exceptions in turn, then succeeds."""

    exceptions = EXCEPTIONS

    def __init__(self, script: Sequence[Exception]) -> None:
        self._script = list(script)
        self.calls: list[dict[str, Any]] = []

    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self._script:
            raise self._script.pop(0)
        return {}


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_store(client: ScriptedClient, sleep: RecordingSleep, **options: Any) -> DynamoWriteStore:
    return DynamoWriteStore(
        cast(DynamoDBClient, client), "ledger", 8, clock=lambda: NOW, sleep=sleep, **options
    )


def test_no_conflict_means_one_call_and_no_sleep() -> None:
    client, sleep = ScriptedClient([]), RecordingSleep()
    assert make_store(client, sleep).record(DEPOSIT) == Recorded(StoredRecord(DEPOSIT, NOW))
    assert len(client.calls) == 1
    assert sleep.delays == []
    items = client.calls[0]["TransactItems"]
    assert [next(iter(item)) for item in items] == ["Put", "Update"]
    assert client.calls[0]["ClientRequestToken"]
    assert len(client.calls[0]["ClientRequestToken"]) <= 36  # DynamoDB's limit


@pytest.mark.parametrize(
    "reasons",
    [
        pytest.param((NONE, CONFLICT), id="aggregate in a concurrent transaction"),
        pytest.param((CONFLICT, NONE), id="record in a concurrent transaction"),
        pytest.param((CONFLICT, CONFLICT), id="both"),
    ],
)
def test_transaction_conflicts_are_retried_until_it_succeeds(
    reasons: tuple[dict[str, Any], ...],
) -> None:
    client, sleep = ScriptedClient([cancelled(*reasons)] * 3), RecordingSleep()
    store = make_store(client, sleep, backoff_base=0.01, backoff_cap=0.03)

    outcome = store.record(DEPOSIT)

    assert outcome == Recorded(StoredRecord(DEPOSIT, NOW))
    assert len(client.calls) == 4
    # Every attempt writes the same items (one recorded_at), with capped, growing backoff.
    assert all(call["TransactItems"] == client.calls[0]["TransactItems"] for call in client.calls)
    assert len(sleep.delays) == 3
    for attempt, delay in enumerate(sleep.delays):
        assert 0 <= delay <= min(0.03, 0.01 * 2**attempt)


def test_each_attempt_has_its_own_client_request_token() -> None:
    """A retried attempt with the token of the cancelled one would be refused by DynamoDB's
    idempotency window (IdempotentParameterMismatch) or answered from its cache."""
    client = ScriptedClient([cancelled(NONE, CONFLICT)] * 2)
    make_store(client, RecordingSleep()).record(DEPOSIT)
    tokens = [call["ClientRequestToken"] for call in client.calls]
    assert len(set(tokens)) == len(tokens) == 3


def test_persistent_conflicts_end_in_store_contended() -> None:
    client, sleep = ScriptedClient([cancelled(NONE, CONFLICT)] * 10), RecordingSleep()
    with pytest.raises(StoreContended):
        make_store(client, sleep, max_attempts=4).record(DEPOSIT)
    assert len(client.calls) == 4


def test_no_sleep_after_the_last_attempt() -> None:
    """Once the budget is spent the caller gets its error at once, not after one more
    backoff (up to backoff_cap) that no attempt follows."""
    client, sleep = ScriptedClient([cancelled(NONE, CONFLICT)] * 10), RecordingSleep()
    with pytest.raises(StoreContended):
        make_store(client, sleep, max_attempts=4).record(DEPOSIT)
    assert len(sleep.delays) == 3


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ResourceNotFoundException",
    ],
)
def test_throttling_and_outage_errors_are_store_unavailable(code: str) -> None:
    client, sleep = ScriptedClient([client_error(code)]), RecordingSleep()
    with pytest.raises(StoreUnavailable):
        make_store(client, sleep).record(DEPOSIT)
    assert len(client.calls) == 1  # botocore already retried; no second layer of retries


@pytest.mark.parametrize(
    "reasons",
    [
        pytest.param((NONE, {"Code": "ThrottlingError"}), id="ThrottlingError"),
        pytest.param(
            ({"Code": "ProvisionedThroughputExceeded"}, NONE), id="ProvisionedThroughputExceeded"
        ),
    ],
)
def test_throttling_cancellation_reason_is_store_unavailable(
    reasons: tuple[dict[str, Any], ...],
) -> None:
    client = ScriptedClient([cancelled(*reasons)])
    with pytest.raises(StoreUnavailable):
        make_store(client, RecordingSleep()).record(DEPOSIT)
    assert len(client.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=["EndpointConnectionError", "ReadTimeoutError"],
)
def test_unreachable_endpoint_is_store_unavailable(error: Exception) -> None:
    client = ScriptedClient([error])
    with pytest.raises(StoreUnavailable) as raised:
        make_store(client, RecordingSleep()).record(DEPOSIT)
    assert raised.value.__cause__ is error


@pytest.mark.parametrize("code", ["AccessDeniedException", "IdempotentParameterMismatchException"])
def test_other_client_errors_are_not_disguised_as_unavailable(code: str) -> None:
    """A misconfiguration or a bug is to surface, not an outage to retry."""
    error = client_error(code)
    client = ScriptedClient([error])
    with pytest.raises(ClientError) as raised:
        make_store(client, RecordingSleep()).record(DEPOSIT)
    assert raised.value is error
    assert not isinstance(raised.value, StoreUnavailable)


# --- DynamoDB refusing the input ----------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(client_error("ValidationException"), id="ValidationException"),
        pytest.param(
            cancelled(NONE, {"Code": "ValidationError", "Message": "Number overflow"}),
            id="cancelled for ValidationError",
        ),
    ],
)
def test_dynamodb_refusing_the_request_is_store_unavailable_at_once(error: Exception) -> None:
    """Before: the ValidationException reached the servicer as itself (INTERNAL), and a
    ValidationError cancellation as a RuntimeError (INTERNAL). No valid deposit is refused
    (sums cannot overflow), so a refusal is the table's or the code's fault, not the
    client's: unavailable, not retried, and the failed call wrote nothing."""
    client, sleep = ScriptedClient([error]), RecordingSleep()
    with pytest.raises(StoreUnavailable):
        make_store(client, sleep).record(DEPOSIT)
    assert len(client.calls) == 1
    assert sleep.delays == []


def test_an_existing_record_wins_over_a_refused_aggregate() -> None:
    """The record's condition failed too: the answer is the replay, not a refusal."""
    stored_item = stored_record_item(fingerprint=DEPOSIT.fingerprint)
    failed = {"Code": "ConditionalCheckFailed", "Item": stored_item}
    client = ScriptedClient([cancelled(failed, {"Code": "ValidationError"})])
    outcome = make_store(client, RecordingSleep()).record(DEPOSIT)
    assert outcome == Replayed(record_from_item(stored_item).record)


# --- an attempt still in progress ---------------------------------------------------------


def test_a_transaction_in_progress_is_retried_with_the_same_token_until_it_answers() -> None:
    """Before: TransactionInProgressException reached the client as INTERNAL. Only the
    attempt's own token can learn how its first try ended: a fresh one could apply the
    deposit a second time."""
    client, sleep = ScriptedClient([in_progress()] * 3), RecordingSleep()
    outcome = make_store(client, sleep).record(DEPOSIT)
    assert outcome == Recorded(StoredRecord(DEPOSIT, NOW))
    tokens = [call["ClientRequestToken"] for call in client.calls]
    assert len(tokens) == 4
    assert len(set(tokens)) == 1
    assert all(call["TransactItems"] == client.calls[0]["TransactItems"] for call in client.calls)
    assert sleep.delays == [0.05, 0.1, 0.2]


def test_an_in_progress_attempt_that_ends_cancelled_is_decided_as_usual() -> None:
    """Its first try met the existing record: the same token then answers the cancellation,
    and the record replays."""
    stored_item = stored_record_item(fingerprint=DEPOSIT.fingerprint)
    failed = {"Code": "ConditionalCheckFailed", "Item": stored_item}
    client = ScriptedClient([in_progress(), cancelled(failed, NONE)])
    outcome = make_store(client, RecordingSleep()).record(DEPOSIT)
    assert outcome == Replayed(record_from_item(stored_item).record)
    assert len({call["ClientRequestToken"] for call in client.calls}) == 1


def test_a_transaction_in_progress_past_the_budget_is_store_unavailable() -> None:
    client, sleep = ScriptedClient([in_progress()] * 10), RecordingSleep()
    store = make_store(client, sleep, in_progress_attempts=4, in_progress_delay=0.1)
    with pytest.raises(StoreUnavailable, match="in progress"):
        store.record(DEPOSIT)
    assert len(client.calls) == 4
    assert len({call["ClientRequestToken"] for call in client.calls}) == 1
    assert sleep.delays == [0.1, 0.2, 0.4]  # none after the last try


def test_in_progress_waits_are_capped() -> None:
    client, sleep = ScriptedClient([in_progress()] * 10), RecordingSleep()
    store = make_store(client, sleep, in_progress_attempts=8, backoff_cap=0.3)
    with pytest.raises(StoreUnavailable):
        store.record(DEPOSIT)
    assert max(sleep.delays) == 0.3


# --- the replay/conflict decision ---------------------------------------------------------


def test_condition_failure_decides_from_the_returned_item() -> None:
    """The cancelled Put hands back the stored item; the fingerprint in it decides replay."""
    stored_item = stored_record_item(fingerprint=DEPOSIT.fingerprint)
    failed = {"Code": "ConditionalCheckFailed", "Item": stored_item}
    client = ScriptedClient([cancelled(failed, NONE)])
    outcome = make_store(client, RecordingSleep()).record(DEPOSIT)
    assert outcome == Replayed(record_from_item(stored_item).record)
    assert isinstance(outcome, Replayed)
    assert outcome.record.recorded_at == datetime(2024, 6, 1, 11, 55, tzinfo=UTC)


def test_the_stored_fingerprint_is_read_not_recomputed() -> None:
    """Before the fix, the fingerprint was written with every record and never read; the
    decision recomputed one from the stored payload. Here the payload equals the deposit's
    but the fingerprint stored with it does not: the stored one decides."""
    stored_item = stored_record_item(fingerprint="0" * 64)
    failed = {"Code": "ConditionalCheckFailed", "Item": stored_item}
    client = ScriptedClient([cancelled(failed, NONE)])
    outcome = make_store(client, RecordingSleep()).record(DEPOSIT)
    assert outcome == Conflicting(record_from_item(stored_item).record)


def retries() -> float:
    return sample("wallet_dynamodb_transaction_retries_total", reason="TransactionConflict")


def test_each_retry_is_counted_and_a_spent_budget_is_not_one_more() -> None:
    before = retries()
    make_store(ScriptedClient([cancelled(NONE, CONFLICT)] * 2), RecordingSleep()).record(DEPOSIT)
    assert retries() - before == 2

    before = retries()
    with pytest.raises(StoreContended):
        make_store(
            ScriptedClient([cancelled(NONE, CONFLICT)] * 10), RecordingSleep(), max_attempts=4
        ).record(DEPOSIT)
    assert retries() - before == 3


def test_throttling_and_condition_failures_are_not_counted_as_retries() -> None:
    before = retries()
    with pytest.raises(StoreUnavailable):
        make_store(ScriptedClient([client_error("ThrottlingException")]), RecordingSleep()).record(
            DEPOSIT
        )
    assert retries() == before
