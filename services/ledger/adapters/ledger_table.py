"""The single DynamoDB table: its definition, key layout and item attribute names.

Terraform's table must match `table_definition` (a test checks).
"""

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.ledger.domain.buckets import format_instant

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


def record_key(request_id: str) -> dict[str, Any]:
    """Record items are keyed by the request id alone: request ids are global idempotency
    keys, and a retry with any other payload must land on the same item."""
    return {PARTITION_KEY: {"S": f"RECORD#{request_id}"}, SORT_KEY: {"S": RECORD_KIND}}


def aggregate_key(wallet_id: str, bucket: datetime, shard: int) -> dict[str, Any]:
    """One item per (wallet, 15-minute bucket, shard): shards spread one hot bucket over
    several partitions."""
    return {
        PARTITION_KEY: {"S": f"AGGREGATE#{wallet_id}#{format_instant(bucket)}#{shard}"},
        SORT_KEY: {"S": AGGREGATE_KIND},
    }


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
