"""The DynamoDB write store: one deposit is one two-item transaction.

1. Put the record item on condition that its key (wallet, request id) is new.
2. ADD the amount (as whole and atto-units) and a count of 1 to the (wallet, bucket, shard)
   aggregate item.

Both happen or neither does, so the aggregate always equals the sum of its records. When
the record already exists, the cancelled transaction hands back the existing item, and the
domain decides replay or conflict from the fingerprint stored in it.
"""

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import Counter

from services.ledger.adapters import ledger_table as t
from services.ledger.domain.records import (
    Deposit,
    Recorded,
    RecordOutcome,
    StoredRecord,
    outcome_for_existing,
)

TRANSACTION_RETRIES = Counter(
    "wallet_dynamodb_transaction_retries_total",
    "DynamoDB transactions the write store retried, by the cancellation reason (throttling "
    "is retried inside botocore and not counted here).",
    ["reason"],
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = logging.getLogger(__name__)

# The IAM actions of the DynamoDB calls this adapter makes; the command service's IAM role
# allows exactly these (terraform/iam.tf; a test checks). Its one call, TransactWriteItems,
# is not an IAM action: IAM authorises each item of the transaction as its own operation,
# here a Put (PutItem) and an Update (UpdateItem).
DYNAMODB_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem")

_THROTTLED = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "ResourceNotFoundException",
}
_THROTTLED_REASONS = {"ThrottlingError", "ProvisionedThroughputExceeded"}
# The one cancellation reason that a retry can cure: another transaction held an item.
_RETRIED_REASON = "TransactionConflict"
# A botocore retry of an attempt whose first try DynamoDB is still running.
_IN_PROGRESS = "TransactionInProgress"
# DynamoDB refused a value of the request: the error code, and the cancellation reason.
_REFUSED = "ValidationException"
_REFUSED_REASON = "ValidationError"


class StoreUnavailable(Exception):
    """DynamoDB could not be reached, throttled us, lacks the table, or kept the transaction
    in progress past the budget. The deposit may or may not be stored, but nothing was
    written that a retry with the same request id would count twice."""


class StoreContended(Exception):
    """The transaction kept conflicting with concurrent ones past the retry budget."""


class WriteStore(Protocol):
    def record(self, deposit: Deposit) -> RecordOutcome: ...


def dynamodb_client(max_pool_connections: int = 64) -> "DynamoDBClient":
    """A client with short timeouts, so an unreachable endpoint surfaces in seconds."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=1,
        read_timeout=5,
        max_pool_connections=max_pool_connections,
    )
    return boto3.client("dynamodb", config=config)


class DynamoWriteStore:
    """Records deposits in the ledger table. Safe to call from many threads at once."""

    def __init__(
        self,
        client: "DynamoDBClient",
        table_name: str,
        shard_count: int,
        *,
        max_attempts: int = 10,
        backoff_base: float = 0.005,
        backoff_cap: float = 0.5,
        in_progress_attempts: int = 6,
        in_progress_delay: float = 0.05,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table_name = table_name
        self._shard_count = shard_count
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._in_progress_attempts = in_progress_attempts
        self._in_progress_delay = in_progress_delay
        self._clock = clock
        self._sleep = sleep

    def record(self, deposit: Deposit) -> RecordOutcome:
        """Stores the deposit once. Retries transaction conflicts with capped, jittered
        exponential backoff; raises StoreContended when they persist, StoreUnavailable when
        DynamoDB cannot take the write, refuses it as malformed, or its outcome stays unknown.
        Whatever it raises, nothing was written that
        a retry with the same request id would count twice."""
        recorded_at = self._clock()
        items = t.record_transaction_items(
            self._table_name, deposit, deposit.shard(self._shard_count), recorded_at
        )
        for attempt in range(self._max_attempts):
            try:
                self._transact(items, _client_request_token(deposit.request_id))
                return Recorded(StoredRecord(deposit, recorded_at))
            except self._client.exceptions.TransactionCanceledException as error:
                reasons = error.response.get("CancellationReasons", [])
                outcome = self._decide_cancelled(deposit, reasons)
                if outcome is not None:
                    return outcome
            except ClientError as error:
                raise _unavailable_refused_or_bug(error) from error
            except BotoCoreError as error:
                raise StoreUnavailable(f"DynamoDB unreachable: {error}") from error
            if attempt + 1 < self._max_attempts:
                TRANSACTION_RETRIES.labels(_RETRIED_REASON).inc()
                self._sleep(self._backoff(attempt))
        raise StoreContended(
            f"transaction for request {deposit.request_id!r} conflicted {self._max_attempts} times"
        )

    def _transact(self, items: list[dict[str, Any]], token: str) -> None:
        """One attempt of the transaction, run until DynamoDB says how it ended.

        TransactionInProgressException means botocore retried this attempt while its first
        try was still running, so whether it was applied is unknown. Once that try
        completes, DynamoDB answers the same token as it ended (a success idempotently,
        without applying it twice), so the attempt is repeated with the SAME token after a
        short wait; a fresh token could apply the deposit a second time. When the answer
        stays unknown past the budget, raises StoreUnavailable: a retry by the caller with
        the same request id is safe, as the record's condition check stops a second copy.
        """
        for retry in range(self._in_progress_attempts):
            try:
                self._client.transact_write_items(
                    TransactItems=items,  # type: ignore[arg-type]
                    ClientRequestToken=token,
                )
                return
            except self._client.exceptions.TransactionInProgressException:
                if retry + 1 == self._in_progress_attempts:
                    break
                TRANSACTION_RETRIES.labels(_IN_PROGRESS).inc()
                self._sleep(min(self._backoff_cap, self._in_progress_delay * 2**retry))
        raise StoreUnavailable(
            f"the transaction stayed in progress after {self._in_progress_attempts} tries"
        )

    def _decide_cancelled(
        self, deposit: Deposit, reasons: Sequence[Mapping[str, Any]]
    ) -> RecordOutcome | None:
        """The outcome of a cancelled transaction, or None when it should be retried."""
        codes = [reason.get("Code", "None") for reason in reasons]
        if codes and codes[0] == "ConditionalCheckFailed":
            existing = t.record_from_item(dict(reasons[0].get("Item", {})))
            return outcome_for_existing(deposit, existing.record, existing.fingerprint)
        if _RETRIED_REASON in codes:
            return None
        if _THROTTLED_REASONS.intersection(codes):
            raise StoreUnavailable(f"DynamoDB throttled the transaction: {codes}")
        if _REFUSED_REASON in codes:
            raise _refused(f"DynamoDB refused the transaction: {reasons}")
        raise RuntimeError(f"transaction cancelled for an unexpected reason: {reasons}")

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self._backoff_cap, self._backoff_base * 2**attempt))


def _client_request_token(request_id: str) -> str:
    """A fresh token per attempt, derived from the request id: botocore's own retries of an
    attempt, and the write store's retries of one still in progress, reuse it, so a lost
    response never applies the transaction twice. It is not the request id alone because a
    replay within DynamoDB's 10-minute token window carries a new recorded_at and would fail
    as IdempotentParameterMismatch instead of reaching the condition check that tells replay
    from conflict."""
    return hashlib.sha256(f"{request_id}\n{uuid.uuid4()}".encode()).hexdigest()[:36]


def _unavailable_refused_or_bug(error: ClientError) -> Exception:
    code = error.response.get("Error", {}).get("Code", "")
    if code in _THROTTLED:
        return StoreUnavailable(f"DynamoDB refused the transaction: {code}")
    if code == _REFUSED:
        return _refused(f"DynamoDB refused the transaction: {error}")
    return error


def _refused(message: str) -> StoreUnavailable:
    """DynamoDB refused the request as malformed (ValidationException, or a cancellation for
    ValidationError). Amounts are validated and aggregate sums cannot overflow, so no valid
    deposit is refused: the table does not match this code (another key schema, an item of
    an older format) or the code has a bug. The store is then unavailable for the deposit,
    not the client at fault; logged as an error with what DynamoDB said, for the operator."""
    log.error("%s", message)
    return StoreUnavailable(message)
