"""Parallel scans of the ledger table: one scan for every kind of item asked for."""

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from services.ledger.adapters import ledger_table as t

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

Item = dict[str, Any]
Consumer = Callable[[list[Item]], None]


def parallel_scan(
    dynamodb: "DynamoDBClient",
    table_name: str,
    segments: int,
    consumers: Mapping[str, Consumer],
) -> None:
    """Hands every item of each kind in `consumers` to that kind's consumer, a page at a
    time, from one consistent parallel scan in `segments` threads. Calls to the consumers
    never overlap.

    One scan for all kinds: DynamoDB reads (and bills) every item a scan passes, whatever
    the filter keeps, so a scan per kind would read the whole table once per kind."""
    one_at_a_time = threading.Lock()

    def scan(segment: int) -> None:
        for page in _segment_pages(dynamodb, table_name, tuple(consumers), segment, segments):
            with one_at_a_time:
                for kind, consume in consumers.items():
                    if of_kind := [item for item in page if item[t.KIND]["S"] == kind]:
                        consume(of_kind)

    with ThreadPoolExecutor(max_workers=segments) as pool:
        for future in [pool.submit(scan, segment) for segment in range(segments)]:
            future.result()  # re-raises a segment's error


def _segment_pages(
    dynamodb: "DynamoDBClient",
    table_name: str,
    kinds: tuple[str, ...],
    segment: int,
    segments: int,
) -> Iterator[list[Item]]:
    values = {f":kind{index}": {"S": kind} for index, kind in enumerate(kinds)}
    request: dict[str, Any] = {
        "TableName": table_name,
        "Segment": segment,
        "TotalSegments": segments,
        "FilterExpression": f"#kind IN ({', '.join(values)})",
        "ExpressionAttributeNames": {"#kind": t.KIND},
        "ExpressionAttributeValues": values,
        "ConsistentRead": True,
    }
    while True:
        page = dynamodb.scan(**request)
        yield [dict(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
