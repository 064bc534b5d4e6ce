"""The single DynamoDB table: its definition, key layout, item attribute names, and the one
codec of its items: a deposit written as its record and aggregate, and read back from a
record item, an aggregate item or a stream image of one.

Terraform's table must match `table_definition` (a test checks).
"""

import contextlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.ledger.domain.aggregates import AggregateImage
from services.ledger.domain.buckets import format_instant, parse_instant
from services.ledger.domain.money import (
    MAX_FRACTION_DIGITS,
    canonical_amount,
    exact_arithmetic,
    format_amount,
)
from services.ledger.domain.records import Deposit, StoredRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

PARTITION_KEY = "pk"
SORT_KEY = "sk"
STREAM_VIEW_TYPE = "NEW_IMAGE"

RECORD_KIND = "record"
AGGREGATE_KIND = "aggregate"

# Item attributes (besides the keys).
KIND = "kind"
WALLET_ID = "wallet_id"
REQUEST_ID = "request_id"
AMOUNT = "amount"
OCCURRED_AT = "occurred_at"
BUCKET = "bucket"
SHARD = "shard"
FINGERPRINT = "fingerprint"
RECORDED_AT = "recorded_at"
RECORD_COUNT = "record_count"
# An aggregate item's running sum: whole units and atto-units (10^-18), each ADDed on its
# own. Not one number: a DynamoDB number holds 38 significant digits, and one amount alone
# may have 38 (20 before the point, 18 after), so one sum attribute soon refuses an ADD.
# Each part here is an integer, which 38 digits hold for some 10^18 deposits.
AMOUNT_WHOLE = "amount_whole"
AMOUNT_ATTO = "amount_atto"
ATTO_PER_UNIT: int = 10**MAX_FRACTION_DIGITS


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments: on-demand capacity, stream with new images for the updater."""
    return {
        "TableName": table_name,
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE},
    }


def record_key(wallet_id: str, request_id: str) -> dict[str, Any]:
    """Record items are keyed by (wallet, request id) alone: request ids are idempotency keys
    scoped per wallet, and a retry with any other payload must land on the same item. Wallet
    ids never contain "#", so the first "#" after the prefix ends the wallet and no two
    (wallet, request id) pairs share a key, whatever the request id holds."""
    return {
        PARTITION_KEY: {"S": f"RECORD#{wallet_id}#{request_id}"},
        SORT_KEY: {"S": RECORD_KIND},
    }


def aggregate_key(wallet_id: str, bucket: datetime, shard: int) -> dict[str, Any]:
    """One item per (wallet, 15-minute bucket, shard): shards spread one hot bucket over
    several partitions."""
    return {
        PARTITION_KEY: {"S": f"AGGREGATE#{wallet_id}#{format_instant(bucket)}#{shard}"},
        SORT_KEY: {"S": AGGREGATE_KIND},
    }


def aggregate_amount_parts(amount: Decimal) -> tuple[int, int]:
    """(whole units, atto-units) of an amount, both non-negative integers with
    `amount == whole + atto / 10^18` exactly: what one deposit ADDs to its aggregate item.

    Raises ValueError for a negative amount or one with more than 18 fraction digits (the
    domain never makes one)."""
    with exact_arithmetic():
        scaled = amount.scaleb(MAX_FRACTION_DIGITS)
        if amount < 0 or scaled != scaled.to_integral_value():
            raise ValueError(f"not a ledger amount: {amount}")
    return divmod(int(scaled), ATTO_PER_UNIT)


class OlderTableFormat(Exception):
    """An item written before record keys held the wallet and sums two attributes. No table
    of that format was ever deployed, so there is no migration: such a table is refused."""


def aggregate_amount(item: dict[str, Any]) -> Decimal:
    """The exact running sum an aggregate item (or its stream image) holds, in canonical
    form: whole + atto / 10^18, carried here because the atto-units ADDed may exceed 10^18.
    The one reader of the two attributes; an item without them raises KeyError, and one
    of the earlier single-attribute format raises OlderTableFormat."""
    if AMOUNT_WHOLE not in item and AMOUNT in item:
        raise OlderTableFormat(
            f"aggregate item {item.get(PARTITION_KEY, {}).get('S')} holds a single `amount`: "
            "the table was written by an earlier version of the ledger, whose keys and sums "
            "this one does not read; start from a new table (locally: delete .wallet-dev)"
        )
    whole = _integer(item[AMOUNT_WHOLE]["N"])
    atto = _integer(item[AMOUNT_ATTO]["N"])
    with exact_arithmetic():
        total = Decimal(whole * ATTO_PER_UNIT + atto).scaleb(-MAX_FRACTION_DIGITS)
    return canonical_amount(total)


def _integer(number: str) -> int:
    # Through Decimal, so that any spelling DynamoDB may answer ("1E+2") reads exactly.
    value = Decimal(number)
    if value != value.to_integral_value():
        raise ValueError(f"not an integer: {number}")
    return int(value)


def record_transaction_items(
    table_name: str, deposit: Deposit, shard: int, recorded_at: datetime
) -> list[dict[str, Any]]:
    """The two TransactWriteItems entries for one deposit."""
    whole, atto = aggregate_amount_parts(deposit.amount)
    record_item = {
        **record_key(deposit.wallet_id, deposit.request_id),
        KIND: {"S": RECORD_KIND},
        WALLET_ID: {"S": deposit.wallet_id},
        REQUEST_ID: {"S": deposit.request_id},
        AMOUNT: {"N": format_amount(deposit.amount)},
        OCCURRED_AT: {"S": format_instant(deposit.occurred_at)},
        BUCKET: {"S": format_instant(deposit.bucket)},
        SHARD: {"N": str(shard)},
        FINGERPRINT: {"S": deposit.fingerprint},
        RECORDED_AT: {"S": format_instant(recorded_at)},
    }
    return [
        {
            "Put": {
                "TableName": table_name,
                "Item": record_item,
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": PARTITION_KEY},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {
            "Update": {
                "TableName": table_name,
                "Key": aggregate_key(deposit.wallet_id, deposit.bucket, shard),
                "UpdateExpression": (
                    "SET #kind = :kind, #wallet = :wallet, #bucket = :bucket, #shard = :shard "
                    "ADD #whole :whole, #atto :atto, #count :one"
                ),
                "ExpressionAttributeNames": {
                    "#kind": KIND,
                    "#wallet": WALLET_ID,
                    "#bucket": BUCKET,
                    "#shard": SHARD,
                    "#whole": AMOUNT_WHOLE,
                    "#atto": AMOUNT_ATTO,
                    "#count": RECORD_COUNT,
                },
                "ExpressionAttributeValues": {
                    ":kind": {"S": AGGREGATE_KIND},
                    ":wallet": {"S": deposit.wallet_id},
                    ":bucket": {"S": format_instant(deposit.bucket)},
                    ":shard": {"N": str(shard)},
                    ":whole": {"N": str(whole)},
                    ":atto": {"N": str(atto)},
                    ":one": {"N": "1"},
                },
            }
        },
    ]


@dataclass(frozen=True)
class RecordItem:
    """A record item read back: the record, the aggregate shard it was added to, and the
    fingerprint of the payload first recorded under its key (for the replay decision)."""

    record: StoredRecord
    shard: int
    fingerprint: str


def record_from_item(item: dict[str, Any]) -> RecordItem:
    deposit = Deposit(
        wallet_id=item[WALLET_ID]["S"],
        request_id=item[REQUEST_ID]["S"],
        occurred_at=parse_instant(item[OCCURRED_AT]["S"]),
        amount=Decimal(item[AMOUNT]["N"]),
    )
    return RecordItem(
        StoredRecord(deposit, recorded_at=parse_instant(item[RECORDED_AT]["S"])),
        shard=int(item[SHARD]["N"]),
        fingerprint=item[FINGERPRINT]["S"],
    )


def stored_record_from_item(item: dict[str, Any]) -> StoredRecord | None:
    """The record an item (or a stream image of one) holds, or None for other items."""
    if item.get(KIND, {}).get("S") != RECORD_KIND:
        return None
    return record_from_item(item).record


def aggregate_from_item(item: dict[str, Any]) -> AggregateImage | None:
    """The aggregate an item (or a stream image of one) holds, or None for other items."""
    if item.get(KIND, {}).get("S") != AGGREGATE_KIND:
        return None
    return AggregateImage(
        wallet_id=item[WALLET_ID]["S"],
        bucket=parse_instant(item[BUCKET]["S"]),
        shard=int(item[SHARD]["N"]),
        amount=aggregate_amount(item),
        record_count=int(item[RECORD_COUNT]["N"]),
    )


def ensure_table(client: "DynamoDBClient", table_name: str) -> bool:
    """Creates the table when it is missing and waits until it is active.

    Returns True when it created the table. For local use and tests; on AWS, Terraform
    owns the table.
    """
    try:
        client.describe_table(TableName=table_name)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    # ResourceInUse: another process created it between the two calls.
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_table(**table_definition(table_name))
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return True
