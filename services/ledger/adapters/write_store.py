"""The DynamoDB write store: one deposit is one two-item transaction.

1. Put the record item on condition that its key (the request id) is new.
2. ADD the amount and a count of 1 to the (wallet, bucket, shard) aggregate item.

Both happen or neither does, so the aggregate always equals the sum of its records. When
the record already exists, the cancelled transaction hands back the existing item and the
replay/conflict decision is made from it.
"""

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from services.ledger.adapters import ledger_table as t
from services.ledger.domain.buckets import format_instant, parse_instant
from services.ledger.domain.money import format_amount
from services.ledger.domain.records import (
    Conflicting,
    Deposit,
    Recorded,
    RecordOutcome,
    Replayed,
    StoredRecord,
)
from services.ledger.metrics import TRANSACTION_RETRIES

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


class StoreUnavailable(Exception):
    """DynamoDB could not be reached, throttled us, or lacks the table. Nothing was written
    that a retry with the same request id would count twice."""


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


def record_transaction_items(
    table_name: str, deposit: Deposit, shard: int, recorded_at: datetime
) -> list[dict[str, Any]]:
    """The two TransactWriteItems entries for one deposit."""
    amount = format_amount(deposit.amount)
    record_item = {
        **t.record_key(deposit.request_id),
        t.KIND: {"S": t.RECORD_KIND},
        t.WALLET_ID: {"S": deposit.wallet_id},
        t.REQUEST_ID: {"S": deposit.request_id},
        t.AMOUNT: {"N": amount},
        t.OCCURRED_AT: {"S": format_instant(deposit.occurred_at)},
        t.BUCKET: {"S": format_instant(deposit.bucket)},
        t.SHARD: {"N": str(shard)},
        t.FINGERPRINT: {"S": deposit.fingerprint},
        t.RECORDED_AT: {"S": format_instant(recorded_at)},
    }
    return [
        {
            "Put": {
                "TableName": table_name,
                "Item": record_item,
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": t.PARTITION_KEY},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {
            "Update": {
                "TableName": table_name,
                "Key": t.aggregate_key(deposit.wallet_id, deposit.bucket, shard),
                "UpdateExpression": (
                    "SET #kind = :kind, #wallet = :wallet, #bucket = :bucket, #shard = :shard "
                    "ADD #amount :amount, #count :one"
                ),
                "ExpressionAttributeNames": {
                    "#kind": t.KIND,
                    "#wallet": t.WALLET_ID,
                    "#bucket": t.BUCKET,
                    "#shard": t.SHARD,
                    "#amount": t.AMOUNT,
                    "#count": t.RECORD_COUNT,
                },
                "ExpressionAttributeValues": {
                    ":kind": {"S": t.AGGREGATE_KIND},
                    ":wallet": {"S": deposit.wallet_id},
                    ":bucket": {"S": format_instant(deposit.bucket)},
                    ":shard": {"N": str(shard)},
                    ":amount": {"N": amount},
                    ":one": {"N": "1"},
                },
            }
        },
    ]


def stored_record_from_item(item: dict[str, Any]) -> StoredRecord:
    deposit = Deposit(
        wallet_id=item[t.WALLET_ID]["S"],
        request_id=item[t.REQUEST_ID]["S"],
        occurred_at=parse_instant(item[t.OCCURRED_AT]["S"]),
        amount=Decimal(item[t.AMOUNT]["N"]),
    )
    return StoredRecord(deposit, recorded_at=parse_instant(item[t.RECORDED_AT]["S"]))


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table_name = table_name
        self._shard_count = shard_count
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock
        self._sleep = sleep

    def record(self, deposit: Deposit) -> RecordOutcome:
        """Stores the deposit once. Retries transaction conflicts with capped, jittered
        exponential backoff; raises StoreContended when they persist and StoreUnavailable
        when DynamoDB cannot take the write."""
        recorded_at = self._clock()
        items = record_transaction_items(
            self._table_name, deposit, deposit.shard(self._shard_count), recorded_at
        )
        for attempt in range(self._max_attempts):
            try:
                self._client.transact_write_items(
                    TransactItems=items,  # type: ignore[arg-type]
                    ClientRequestToken=_client_request_token(deposit.request_id),
                )
                return Recorded(StoredRecord(deposit, recorded_at))
            except self._client.exceptions.TransactionCanceledException as error:
                reasons = error.response.get("CancellationReasons", [])
                outcome = self._decide_cancelled(deposit, reasons)
                if outcome is not None:
                    return outcome
            except ClientError as error:
                raise _unavailable_or_bug(error) from error
            except BotoCoreError as error:
                raise StoreUnavailable(f"DynamoDB unreachable: {error}") from error
            if attempt + 1 < self._max_attempts:
                TRANSACTION_RETRIES.labels(_RETRIED_REASON).inc()
                self._sleep(self._backoff(attempt))
        raise StoreContended(
            f"transaction for request {deposit.request_id!r} conflicted {self._max_attempts} times"
        )

    def _decide_cancelled(
        self, deposit: Deposit, reasons: Sequence[Mapping[str, Any]]
    ) -> RecordOutcome | None:
        """The outcome of a cancelled transaction, or None when it should be retried."""
        codes = [reason.get("Code", "None") for reason in reasons]
        if codes and codes[0] == "ConditionalCheckFailed":
            existing = stored_record_from_item(dict(reasons[0].get("Item", {})))
            if existing.deposit.fingerprint == deposit.fingerprint:
                return Replayed(existing)
            return Conflicting(existing)
        if _RETRIED_REASON in codes:
            return None
        if _THROTTLED_REASONS.intersection(codes):
            raise StoreUnavailable(f"DynamoDB throttled the transaction: {codes}")
        raise RuntimeError(f"transaction cancelled for an unexpected reason: {reasons}")

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self._backoff_cap, self._backoff_base * 2**attempt))


def _client_request_token(request_id: str) -> str:
    """A fresh token per attempt, derived from the request id: botocore's own retries of an
    attempt reuse it, so a lost response never applies the transaction twice. It is not the
    request id alone because a replay within DynamoDB's 10-minute token window carries a new
    recorded_at and would fail as IdempotentParameterMismatch instead of reaching the
    condition check that tells replay from conflict."""
    return hashlib.sha256(f"{request_id}\n{uuid.uuid4()}".encode()).hexdigest()[:36]


def _unavailable_or_bug(error: ClientError) -> Exception:
    code = error.response.get("Error", {}).get("Code", "")
    if code in _THROTTLED:
        return StoreUnavailable(f"DynamoDB refused the transaction: {code}")
    return error
