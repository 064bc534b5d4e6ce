"""Reads the ledger table's DynamoDB stream: its shards, and every aggregate image after a
position."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.table_scan import Item, parallel_scan
from services.ledger.domain.buckets import parse_instant
from services.updater.positions import (
    AggregateImage,
    CheckpointLost,
    ShardPosition,
    StreamShard,
    keep_newest,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient

# The IAM actions of the DynamoDB and DynamoDB Streams calls the updater makes (Streams
# calls are authorised as dynamodb:*); its IAM role allows exactly these, on the table and
# its streams (terraform/iam.tf; a test checks).
DYNAMODB_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:Scan",
    "dynamodb:DescribeStream",
    "dynamodb:GetShardIterator",
    "dynamodb:GetRecords",
)
_PAGE = 1000
_EMPTY_PAGES_AT_END = 3


def streams_client() -> "DynamoDBStreamsClient":
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=2)
    return boto3.client("dynamodbstreams", config=config)


class _FirstNewer:
    """The first record a shard got after a LATEST iterator was taken, found by polling
    that iterator once per page of the main read (nothing new yet: not reached)."""

    def __init__(self, streams: "DynamoDBStreamsClient", latest_iterator: str) -> None:
        self._streams = streams
        self._iterator: str | None = latest_iterator
        self._sequence: int | None = None

    def reached(self, sequence_number: str) -> bool:
        """Whether a read that got to `sequence_number` has read past it."""
        if self._sequence is None and self._iterator is not None:
            page = self._streams.get_records(ShardIterator=self._iterator, Limit=1)
            records = page.get("Records", [])
            if records:
                self._sequence = int(records[0]["dynamodb"]["SequenceNumber"])
            self._iterator = page.get("NextShardIterator")
        return self._sequence is not None and int(sequence_number) >= self._sequence


def aggregate_image(item: dict[str, Any]) -> AggregateImage | None:
    """The aggregate an item image describes, or None for other items (records)."""
    if item.get(t.KIND, {}).get("S") != t.AGGREGATE_KIND:
        return None
    return AggregateImage(
        wallet_id=item[t.WALLET_ID]["S"],
        bucket=parse_instant(item[t.BUCKET]["S"]),
        shard=int(item[t.SHARD]["N"]),
        amount=Decimal(item[t.AMOUNT]["N"]),
        record_count=int(item[t.RECORD_COUNT]["N"]),
    )


@dataclass
class StreamBatch:
    """What one pass read: the newest image per aggregate item and where each shard ended."""

    stream_arn: str
    images: dict[tuple[str, datetime, int], AggregateImage] = field(default_factory=dict)
    positions: list[ShardPosition] = field(default_factory=list)
    records_read: int = 0


class StreamReader:
    def __init__(
        self,
        dynamodb: "DynamoDBClient",
        streams: "DynamoDBStreamsClient",
        table_name: str,
    ) -> None:
        self._dynamodb = dynamodb
        self._streams = streams
        self._table_name = table_name

    def stream_arn(self) -> str:
        table = self._dynamodb.describe_table(TableName=self._table_name)["Table"]
        arn = table.get("LatestStreamArn")
        if not arn:
            raise RuntimeError(f"table {self._table_name} has no stream enabled")
        return arn

    def shards(self, stream_arn: str) -> list[StreamShard]:
        shards: list[StreamShard] = []
        request: dict[str, Any] = {"StreamArn": stream_arn}
        while True:
            description = self._streams.describe_stream(**request)["StreamDescription"]
            shards.extend(
                StreamShard(shard["ShardId"], shard.get("ParentShardId"))
                for shard in description.get("Shards", [])
            )
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            request["ExclusiveStartShardId"] = last

    def read(self, stream_arn: str, plan: list[ShardPosition]) -> StreamBatch:
        """Reads each planned shard from its position until it has nothing more for now, or
        has reached records written after its read began."""
        batch = StreamBatch(stream_arn)
        batch.positions = [self._read_shard(stream_arn, position, batch) for position in plan]
        return batch

    def _read_shard(
        self, stream_arn: str, position: ShardPosition, batch: StreamBatch
    ) -> ShardPosition:
        """Adds the shard's records after `position` to the batch; returns the new position.

        A few empty pages in a row end the read: an open shard has nothing more yet, and
        the next pass goes on from the checkpoint (DynamoDB Streams may answer an empty page
        before a later one with records, so one is not enough). A shard that keeps growing
        under steady writes never gives those, so the read also ends once it has read past
        the first record written after it began: a shard is in write order, so everything
        written before the pass has been read by then. No next iterator means a closed
        shard read to its end."""
        last_sequence = position.sequence_number
        iterator: str | None = self._iterator(stream_arn, position)
        newer = _FirstNewer(self._streams, self._latest_iterator(stream_arn, position.shard_id))
        empty_pages = 0
        while iterator and empty_pages < _EMPTY_PAGES_AT_END:
            try:
                page = self._streams.get_records(ShardIterator=iterator, Limit=_PAGE)
            except self._streams.exceptions.TrimmedDataAccessException as error:
                raise CheckpointLost(
                    f"stream shard {position.shard_id} dropped records while being read"
                ) from error
            records = page.get("Records", [])
            for record in records:
                batch.records_read += 1
                last_sequence = record["dynamodb"]["SequenceNumber"]
                image = aggregate_image(dict(record["dynamodb"].get("NewImage", {})))
                if image is not None:
                    keep_newest(batch.images, image)
            iterator = page.get("NextShardIterator")
            empty_pages = 0 if records else empty_pages + 1
            if records and newer.reached(records[-1]["dynamodb"]["SequenceNumber"]):
                break
        return ShardPosition(position.shard_id, last_sequence, finished=iterator is None)

    def _latest_iterator(self, stream_arn: str, shard_id: str) -> str:
        return self._streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="LATEST"
        )["ShardIterator"]

    def _iterator(self, stream_arn: str, position: ShardPosition) -> str:
        request: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": position.shard_id}
        if position.sequence_number is None:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["SequenceNumber"] = position.sequence_number
        try:
            return self._streams.get_shard_iterator(**request)["ShardIterator"]
        except self._streams.exceptions.TrimmedDataAccessException as error:
            raise CheckpointLost(
                f"stream shard {position.shard_id} dropped records after the checkpoint"
            ) from error
        except self._streams.exceptions.ResourceNotFoundException as error:
            raise CheckpointLost(f"stream shard {position.shard_id} no longer exists") from error

    def scan_aggregates(
        self, segments: int, consume: Callable[[list[AggregateImage]], None]
    ) -> None:
        """Hands every aggregate item of the table to `consume`, a page at a time, from a
        parallel scan. Calls to `consume` never overlap."""

        def images(items: list[Item]) -> None:
            consume([image for image in map(aggregate_image, items) if image is not None])

        parallel_scan(self._dynamodb, self._table_name, t.AGGREGATE_KIND, segments, images)
