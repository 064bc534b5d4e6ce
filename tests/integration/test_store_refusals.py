"""What the command service answers when DynamoDB refuses a deposit's values or leaves its
transaction in progress: a status the client can act on, never INTERNAL, and nothing
stored twice. Against DynamoDB Local through the real command service."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from unittest import mock

import grpc
import pytest
from botocore.client import BaseClient
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters import ledger_table as t
from services.ledger.domain.buckets import format_instant
from services.ledger.domain.records import new_deposit
from services.platform.settings import CommandSettings
from tests.integration.conftest import Scan, aggregates, deposit_request, records
from wallet.v1 import command_pb2_grpc

OCCURRED = datetime(2024, 3, 10, 14, 5, tzinfo=UTC)
# The largest integer a DynamoDB number holds (38 significant digits); adding 2 to it makes
# one of 39 (adding 1 would make 1E+38, a single significant digit).
LARGEST_NUMBER = 10**38 - 1

ApiCall = Callable[..., dict[str, Any]]


def seed_full_aggregate(
    dynamodb: DynamoDBClient, table_name: str, settings: CommandSettings, request_id: str
) -> dict[str, Any]:
    """The aggregate item the deposit `request_id` adds to, with whole units no ADD can
    grow: no real sum gets there, but DynamoDB then refuses the deposit's values as it
    refused the single-attribute sum of the old layout."""
    deposit = new_deposit(
        wallet_id="w1", request_id=request_id, occurred_at=OCCURRED, amount="2", now=OCCURRED
    )
    shard = deposit.shard(settings.aggregate_shards)
    item = {
        **t.aggregate_key("w1", deposit.bucket, shard),
        t.KIND: {"S": t.AGGREGATE_KIND},
        t.WALLET_ID: {"S": "w1"},
        t.BUCKET: {"S": format_instant(deposit.bucket)},
        t.SHARD: {"N": str(shard)},
        t.AMOUNT_WHOLE: {"N": str(LARGEST_NUMBER)},
        t.AMOUNT_ATTO: {"N": "0"},
        t.RECORD_COUNT: {"N": "1"},
    }
    dynamodb.put_item(TableName=table_name, Item=item)
    return item


def test_a_write_dynamodb_refuses_is_unavailable_and_stores_nothing(
    command_stub: command_pb2_grpc.WalletCommandStub,
    dynamodb: DynamoDBClient,
    table_name: str,
    settings: CommandSettings,
    scan: Scan,
) -> None:
    """Before the fix, DynamoDB's refusal reached the client as INTERNAL. It is not the
    client's fault (no valid deposit can make a sum overflow now), so it is not
    INVALID_ARGUMENT either: the store cannot take the write."""
    seeded = seed_full_aggregate(dynamodb, table_name, settings, "refused")
    before = scan()

    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(
            deposit_request(request_id="refused", occurred_at=OCCURRED, amount="2")
        )

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert scan() == before
    assert records(before) == []
    assert aggregates(before) == [seeded]


def in_progress(client: BaseClient, operation: str) -> Exception:
    """The TransactionInProgressException a client raises (its class is made per client)."""
    error: Any = {"Error": {"Code": "TransactionInProgressException", "Message": "busy"}}
    exception: Exception = cast(Any, client).exceptions.TransactionInProgressException(
        error, operation
    )
    return exception


@pytest.fixture
def first_try_in_flight() -> Iterator[list[dict[str, Any]]]:
    """Every TransactWriteItems call made in this process is applied by DynamoDB, but its
    first one answers TransactionInProgressException, as when botocore retries a try whose
    response was lost while DynamoDB still ran it. Yields the calls' parameters."""
    calls: list[dict[str, Any]] = []
    real: ApiCall = BaseClient._make_api_call  # type: ignore[attr-defined]

    def call(client: BaseClient, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = real(client, operation, params)
        if operation != "TransactWriteItems":
            return answer
        calls.append(params)
        if len(calls) == 1:
            raise in_progress(client, operation)
        return answer

    with mock.patch.object(BaseClient, "_make_api_call", call):
        yield calls


def test_a_transaction_in_progress_is_awaited_with_its_token_and_counted_once(
    command_stub: command_pb2_grpc.WalletCommandStub,
    scan: Scan,
    first_try_in_flight: list[dict[str, Any]],
) -> None:
    """Before the fix, TransactionInProgressException reached the client as INTERNAL.
    Asked again with the same token, DynamoDB answers the completed transaction without
    applying it twice; a fresh token would have met the record and called it a replay."""
    response = command_stub.RecordTransaction(
        deposit_request(request_id="in-flight", occurred_at=OCCURRED, amount="2.5")
    )

    assert not response.replayed
    assert response.record.amount == "2.5"
    tokens = [call["ClientRequestToken"] for call in first_try_in_flight]
    assert len(tokens) == 2
    assert len(set(tokens)) == 1
    items = scan()
    assert len(records(items)) == 1
    (aggregate,) = aggregates(items)
    assert aggregate[t.RECORD_COUNT] == {"N": "1"}
    assert t.aggregate_amount(aggregate) == Decimal("2.5")


def test_a_transaction_still_in_progress_past_the_budget_is_unavailable(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    """The outcome stays unknown: UNAVAILABLE (HTTP 503) tells the client to retry with the
    same request id, which the record's condition keeps from counting twice."""
    real: ApiCall = BaseClient._make_api_call  # type: ignore[attr-defined]

    def call(client: BaseClient, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "TransactWriteItems":
            raise in_progress(client, operation)
        return real(client, operation, params)

    with (
        mock.patch.object(BaseClient, "_make_api_call", call),
        pytest.raises(grpc.RpcError) as raised,
    ):
        command_stub.RecordTransaction(
            deposit_request(request_id="stuck", occurred_at=OCCURRED), timeout=30
        )

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert scan() == []
    retried = command_stub.RecordTransaction(
        deposit_request(request_id="stuck", occurred_at=OCCURRED)
    )
    assert not retried.replayed
    assert len(records(scan())) == 1
