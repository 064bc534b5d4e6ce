"""Helpers for integration tests: full-table scans of the ledger table and request builders."""

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters import ledger_table as t
from tests.history_oracle import exact_sum
from wallet.v1 import command_pb2

Item = dict[str, Any]
Scan = Callable[[], list[Item]]


def timestamp(instant: datetime, nanos: int | None = None) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(instant)
    if nanos is not None:
        result.nanos = nanos
    return result


def deposit_request(
    *,
    wallet_id: str = "w1",
    request_id: str = "req-1",
    occurred_at: datetime | Timestamp | None,
    amount: str = "1.1",
) -> command_pb2.RecordTransactionRequest:
    request = command_pb2.RecordTransactionRequest(
        wallet_id=wallet_id, request_id=request_id, amount=amount
    )
    if isinstance(occurred_at, datetime):
        request.occurred_at.CopyFrom(timestamp(occurred_at))
    elif occurred_at is not None:
        request.occurred_at.CopyFrom(occurred_at)
    return request


def records(items: Iterable[Item]) -> list[Item]:
    return [item for item in items if item[t.KIND]["S"] == t.RECORD_KIND]


def aggregates(items: Iterable[Item]) -> list[Item]:
    return [item for item in items if item[t.KIND]["S"] == t.AGGREGATE_KIND]


def item_amount(item: Item) -> Decimal:
    """A record's amount, or an aggregate's running sum (decoded as the updater does)."""
    if item[t.KIND]["S"] == t.AGGREGATE_KIND:
        return t.aggregate_amount(item)
    return Decimal(item[t.AMOUNT]["N"])


def total_amount(items: Iterable[Item]) -> Decimal:
    return exact_sum(map(item_amount, items))


def total_count(items: Iterable[Item]) -> int:
    return sum(int(item[t.RECORD_COUNT]["N"]) for item in items)


@pytest.fixture
def scan(dynamodb: DynamoDBClient, table_name: str) -> Scan:
    """Every item of the test's table, strongly consistent, in key order."""

    def scan_all() -> list[Item]:
        items: list[Item] = []
        paginator = dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=table_name, ConsistentRead=True):
            items.extend(page["Items"])
        return sorted(items, key=lambda item: (item[t.PARTITION_KEY]["S"], item[t.SORT_KEY]["S"]))

    return scan_all
