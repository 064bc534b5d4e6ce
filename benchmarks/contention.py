"""Part (c) of `wallet bench write`: the seed's write scheme against ours, with many writers
into one hour and clients that resend requests.

The seed's scheme is a baseline here, not product code. Per deposit it reads the hour's
aggregate item (amount, version), then runs one transaction that writes the aggregate on
condition that its version is still the one it read (`attribute_not_exists` for the hour's
first deposit) and puts the record item with no condition. Nothing is retried: a cancelled
transaction is a rejected write, and a resent request adds its amount a second time. (The
seed's own first write had no condition at all, so a concurrent first write was silently
lost; with the condition it shows up as a rejection instead.) Amounts stay exact decimals,
where the seed used floats, so that only the concurrency scheme differs.

Ours is the product's write path, DynamoWriteStore.record.
"""

import enum
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks.load import run_concurrently
from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.write_store import (
    DynamoWriteStore,
    StoreContended,
    StoreUnavailable,
)
from services.ledger.domain.money import format_amount
from services.ledger.domain.records import Deposit, Recorded, Replayed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# The seed's table: the partition key is the UTC hour (yyyyMMddHH); the sort key is "amount"
# for the hour's aggregate item and the request id for a record item.
SEED_PARTITION_KEY = "PK"
SEED_SORT_KEY = "SK"
SEED_AGGREGATE_SORT_KEY = "amount"
SEED_AMOUNT = "amount"
SEED_VERSION = "version"


class Verdict(enum.Enum):
    STORED = "stored"
    """The call wrote the deposit (for the seed: once more, if it was a resend)."""
    REPLAYED = "replayed"
    """The call recognised a resend and changed nothing."""
    REJECTED = "rejected"
    """The call failed; the client has to try again."""


@dataclass(frozen=True)
class Totals:
    """What one table's aggregate items add up to, and what its record items add up to."""

    aggregates: Decimal
    records: Decimal

    @property
    def agree(self) -> bool:
        return self.aggregates == self.records


class Scheme(Protocol):
    name: str

    def send(self, deposit: Deposit) -> Verdict: ...

    def totals(self) -> Totals: ...


class SeedScheme:
    name = "seed: read, version-checked write, no retry"

    def __init__(self, client: "DynamoDBClient", table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    @classmethod
    def with_new_table(cls, client: "DynamoDBClient", table_name: str) -> "SeedScheme":
        client.create_table(
            TableName=table_name,
            KeySchema=[
                {"AttributeName": SEED_PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": SEED_SORT_KEY, "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": SEED_PARTITION_KEY, "AttributeType": "S"},
                {"AttributeName": SEED_SORT_KEY, "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(
            TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return cls(client, table_name)

    def send(self, deposit: Deposit) -> Verdict:
        hour = deposit.occurred_at.strftime("%Y%m%d%H")  # occurred_at is in UTC
        read = self._client.get_item(TableName=self._table_name, Key=_seed_aggregate_key(hour))
        try:
            self._client.transact_write_items(
                TransactItems=[
                    self._aggregate_write(hour, deposit, read.get("Item")),
                    self._record_put(hour, deposit),
                ]
            )
        except self._client.exceptions.TransactionCanceledException:
            return Verdict.REJECTED
        return Verdict.STORED

    def _aggregate_write(
        self, hour: str, deposit: Deposit, aggregate: dict[str, Any] | None
    ) -> "TransactWriteItemTypeDef":
        amount = {"N": format_amount(deposit.amount)}
        if aggregate is None:
            return {
                "Put": {
                    "TableName": self._table_name,
                    "Item": {
                        **_seed_aggregate_key(hour),
                        SEED_AMOUNT: amount,
                        SEED_VERSION: {"N": "1"},
                    },
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": SEED_PARTITION_KEY},
                }
            }
        return {
            "Update": {
                "TableName": self._table_name,
                "Key": _seed_aggregate_key(hour),
                "UpdateExpression": "SET #amount = #amount + :amount, #version = #version + :one",
                "ConditionExpression": "#version = :read",
                "ExpressionAttributeNames": {"#amount": SEED_AMOUNT, "#version": SEED_VERSION},
                "ExpressionAttributeValues": {
                    ":amount": amount,
                    ":one": {"N": "1"},
                    ":read": aggregate[SEED_VERSION],
                },
            }
        }

    def _record_put(self, hour: str, deposit: Deposit) -> "TransactWriteItemTypeDef":
        return {
            "Put": {
                "TableName": self._table_name,
                "Item": {
                    **_seed_record_key(hour, deposit.request_id),
                    SEED_AMOUNT: {"N": format_amount(deposit.amount)},
                    "datetime": {"S": deposit.occurred_at.isoformat()},
                },
            }
        }

    def totals(self) -> Totals:
        aggregates = records = Decimal(0)
        for item in _scan(self._client, self._table_name):
            if item[SEED_SORT_KEY]["S"] == SEED_AGGREGATE_SORT_KEY:
                aggregates += Decimal(item[SEED_AMOUNT]["N"])
            else:
                records += Decimal(item[SEED_AMOUNT]["N"])
        return Totals(aggregates, records)


def _seed_aggregate_key(hour: str) -> dict[str, Any]:
    return {SEED_PARTITION_KEY: {"S": hour}, SEED_SORT_KEY: {"S": SEED_AGGREGATE_SORT_KEY}}


def _seed_record_key(hour: str, request_id: str) -> dict[str, Any]:
    return {SEED_PARTITION_KEY: {"S": hour}, SEED_SORT_KEY: {"S": request_id}}


class OurScheme:
    name = "ours: DynamoWriteStore"

    def __init__(self, store: DynamoWriteStore, client: "DynamoDBClient", table_name: str) -> None:
        self._store = store
        self._client = client
        self._table_name = table_name

    def send(self, deposit: Deposit) -> Verdict:
        try:
            outcome = self._store.record(deposit)
        except (StoreContended, StoreUnavailable):
            return Verdict.REJECTED
        if isinstance(outcome, Recorded):
            return Verdict.STORED
        if isinstance(outcome, Replayed):
            return Verdict.REPLAYED
        return Verdict.REJECTED  # Conflicting: the request id holds another payload

    def totals(self) -> Totals:
        aggregates = records = Decimal(0)
        for item in _scan(self._client, self._table_name):
            if item[t.KIND]["S"] == t.AGGREGATE_KIND:
                aggregates += t.aggregate_amount(item)
            else:
                records += Decimal(item[t.AMOUNT]["N"])
        return Totals(aggregates, records)


def _scan(client: "DynamoDBClient", table_name: str) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        yield from page.get("Items", [])


@dataclass(frozen=True)
class ContentionResult:
    scheme: str
    writers: int
    calls: int
    rejected: int
    resent: int
    counted_twice: int
    totals: Totals
    first_error: Exception | None

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.calls


def measure_contention(
    scheme: Scheme,
    warmup: Sequence[Deposit],
    deposits: Sequence[Deposit],
    writers: int,
    resend_share: float,
    rng: random.Random,
) -> ContentionResult:
    """Sends `warmup`, then `deposits`, each from `writers` concurrent threads. Then resends,
    one at a time, `resend_share` of the deposits (as a count) picked from those that were
    stored: clients retrying calls whose answers they lost."""
    run_concurrently(scheme.send, warmup, writers)
    run = run_concurrently(scheme.send, deposits, writers)
    stored = [call.item for call in run.calls if call.outcome is Verdict.STORED]
    resends = rng.sample(stored, min(len(stored), math.ceil(resend_share * len(deposits))))
    resent = run_concurrently(scheme.send, resends, clients=1)
    errors = run.errors + resent.errors
    return ContentionResult(
        scheme=scheme.name,
        writers=writers,
        calls=len(run.calls),
        rejected=sum(1 for call in run.calls if call.outcome is not Verdict.STORED),
        resent=len(resends),
        counted_twice=sum(1 for call in resent.calls if call.outcome is Verdict.STORED),
        totals=scheme.totals(),
        first_error=errors[0] if errors else None,
    )
