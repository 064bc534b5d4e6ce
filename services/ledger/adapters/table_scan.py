"""Parallel scans of the ledger table, one kind of item at a time."""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from services.ledger.adapters import ledger_table as t

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

Item = dict[str, Any]


def parallel_scan(
    dynamodb: "DynamoDBClient",
    table_name: str,
    kind: str,
    segments: int,
    consume: Callable[[list[Item]], None],
) -> None:
    """Hands every item of `kind` to `consume`, a page at a time, from a consistent parallel
    scan in `segments` threads. Calls to `consume` never overlap."""
    one_at_a_time = threading.Lock()

    def scan(segment: int) -> None:
        for page in _segment_pages(dynamodb, table_name, kind, segment, segments):
            with one_at_a_time:
                consume(page)

    with ThreadPoolExecutor(max_workers=segments) as pool:
        for future in [pool.submit(scan, segment) for segment in range(segments)]:
            future.result()  # re-raises a segment's error


def _segment_pages(
    dynamodb: "DynamoDBClient", table_name: str, kind: str, segment: int, segments: int
) -> Iterator[list[Item]]:
    request: dict[str, Any] = {
        "TableName": table_name,
        "Segment": segment,
        "TotalSegments": segments,
        "FilterExpression": "#kind = :kind",
        "ExpressionAttributeNames": {"#kind": t.KIND},
        "ExpressionAttributeValues": {":kind": {"S": kind}},
        "ConsistentRead": True,
    }
    while True:
        page = dynamodb.scan(**request)
        yield [dict(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
