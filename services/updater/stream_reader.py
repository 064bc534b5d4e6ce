"""Reads the ledger table's DynamoDB stream: its shards, and every aggregate and record
image after a position."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.table_scan import Item, parallel_scan
from services.ledger.domain.aggregates import AggregateImage
from services.ledger.domain.records import StoredRecord
from services.updater.positions import (
    CheckpointLost,
    ShardPosition,
    StreamShard,
    keep_newest,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.type_defs import ShardTypeDef

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
# Stream records per commit of a long pass: few enough that a failure late in a large
# backlog loses little work, many enough that the commits' recomputed totals stay cheap.
DEFAULT_CHUNK_RECORDS = 10_000


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


class ShardEnd(Enum):
    """Why the read of one shard stopped."""

    CAUGHT_UP = "it read past the first record written after its read began"
    QUIET = "a few pages in a row were empty"
    CLOSED = "it read a closed shard to its end"
    CHUNK_FULL = "its batch holds a chunk of records; the next batch goes on from there"


@dataclass
class StreamBatch:
    """One chunk of a pass: the newest image per aggregate item among the records read,
    the record items written, the position of every shard read (to be checkpointed with
    the images), and where the next chunk goes on."""

    stream_arn: str
    images: dict[tuple[str, datetime, int], AggregateImage] = field(default_factory=dict)
    records: list[StoredRecord] = field(default_factory=list)
    positions: list[ShardPosition] = field(default_factory=list)
    records_read: int = 0
    # The shard the chunk filled up in, then the planned shards not read yet; empty once
    # every planned shard has been read to its end.
    unread: list[ShardPosition] = field(default_factory=list)
    # Whether every shard whose read ended in this batch ended ShardEnd.CAUGHT_UP.
    caught_up: bool = True


class StreamReader:
    def __init__(
        self,
        dynamodb: "DynamoDBClient",
        streams: "DynamoDBStreamsClient",
        table_name: str,
        chunk_records: int = DEFAULT_CHUNK_RECORDS,
    ) -> None:
        self._dynamodb = dynamodb
        self._streams = streams
        self._table_name = table_name
        self._chunk_records = chunk_records

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
            shards.extend(_stream_shard(shard) for shard in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            request["ExclusiveStartShardId"] = last

    def read(self, stream_arn: str, plan: list[ShardPosition]) -> StreamBatch:
        """Reads the planned shards one after another, each from its position until it has
        nothing more for now, has reached records written after its read began, or has
        ended; stops once the batch holds `chunk_records` stream records, and says in
        `unread` where to go on."""
        batch = StreamBatch(stream_arn)
        for index, position in enumerate(plan):
            if batch.records_read == self._chunk_records:
                batch.unread = plan[index:]
                return batch
            reached, end = self._read_shard(stream_arn, position, batch)
            batch.positions.append(reached)
            if end is ShardEnd.CHUNK_FULL:
                batch.unread = [reached, *plan[index + 1 :]]
                return batch
            batch.caught_up = batch.caught_up and end is ShardEnd.CAUGHT_UP
        return batch

    def _read_shard(
        self, stream_arn: str, position: ShardPosition, batch: StreamBatch
    ) -> tuple[ShardPosition, ShardEnd]:
        """Adds the shard's records from `position` on to the batch; returns the position
        after them and why the read stopped.

        A few empty pages in a row end the read: an open shard has nothing more yet, and
        the next pass goes on from the checkpoint (DynamoDB Streams may answer an empty page
        before a later one with records, so one is not enough). A shard that keeps growing
        under steady writes never gives those, so the read also ends once it has read past
        the first record written after it began: a shard is in write order, so everything
        written before the read began has been read by then. No next iterator means a
        closed shard read to its end."""
        iterator: str | None = self._iterator(stream_arn, position)
        newer = _FirstNewer(self._streams, self._latest_iterator(stream_arn, position.shard_id))
        empty_pages = 0
        while iterator:
            # No page overfills the chunk: a chunk is exactly `chunk_records` records.
            limit = min(_PAGE, self._chunk_records - batch.records_read)
            try:
                page = self._streams.get_records(ShardIterator=iterator, Limit=limit)
            except self._streams.exceptions.TrimmedDataAccessException as error:
                raise CheckpointLost(
                    f"stream shard {position.shard_id} dropped records while being read"
                ) from error
            records = page.get("Records", [])
            for record in records:
                batch.records_read += 1
                item = dict(record["dynamodb"].get("NewImage", {}))
                if (image := t.aggregate_from_item(item)) is not None:
                    keep_newest(batch.images, image)
                elif (stored := t.stored_record_from_item(item)) is not None:
                    batch.records.append(stored)
            if records:
                last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
                position = ShardPosition(position.shard_id, last_sequence)
            iterator = page.get("NextShardIterator")
            empty_pages = 0 if records else empty_pages + 1
            # A closed shard's end is ShardEnd.CLOSED whatever else holds: it is finished.
            if records and iterator and newer.reached(last_sequence):
                return position, ShardEnd.CAUGHT_UP
            if iterator and batch.records_read == self._chunk_records:
                return position, ShardEnd.CHUNK_FULL
            if empty_pages >= _EMPTY_PAGES_AT_END:
                return position, ShardEnd.QUIET
        return replace(position, finished=True), ShardEnd.CLOSED

    def _latest_iterator(self, stream_arn: str, shard_id: str) -> str:
        return self._streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="LATEST"
        )["ShardIterator"]

    def _iterator(self, stream_arn: str, position: ShardPosition) -> str:
        """An iterator at or after the position's sequence number: DynamoDB Streams refuses
        one (TrimmedDataAccessException) once records from there on have been trimmed."""
        request: dict[str, Any] = {
            "StreamArn": stream_arn,
            "ShardId": position.shard_id,
            "ShardIteratorType": (
                "AT_SEQUENCE_NUMBER" if position.at_sequence_number else "AFTER_SEQUENCE_NUMBER"
            ),
            "SequenceNumber": position.sequence_number,
        }
        try:
            return self._streams.get_shard_iterator(**request)["ShardIterator"]
        except self._streams.exceptions.TrimmedDataAccessException as error:
            raise CheckpointLost(
                f"stream shard {position.shard_id} dropped records the read model has not "
                "read (the stream keeps them 24 hours)"
            ) from error
        except self._streams.exceptions.ResourceNotFoundException as error:
            raise CheckpointLost(f"stream shard {position.shard_id} no longer exists") from error

    def oldest_sequence_number(self, stream_arn: str, shard_id: str) -> str | None:
        """The sequence number of the oldest record the shard still holds, read from its
        trim horizon; None when a few pages in a row bring none (nothing written yet, or a
        closed shard with nothing left)."""
        iterator: str | None = self._streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for _ in range(_EMPTY_PAGES_AT_END):
            if iterator is None:
                return None
            page = self._streams.get_records(ShardIterator=iterator, Limit=1)
            if records := page.get("Records", []):
                return records[0]["dynamodb"]["SequenceNumber"]
            iterator = page.get("NextShardIterator")
        return None

    def scan_table(
        self,
        segments: int,
        aggregates: Callable[[list[AggregateImage]], None],
        records: Callable[[list[StoredRecord]], None],
    ) -> None:
        """Hands every aggregate item of the table to `aggregates` and every record item to
        `records`, a page at a time, from one parallel scan. Calls never overlap."""

        def images(items: list[Item]) -> None:
            aggregates([image for image in map(t.aggregate_from_item, items) if image is not None])

        def stored(items: list[Item]) -> None:
            records([t.record_from_item(item).record for item in items])

        parallel_scan(
            self._dynamodb,
            self._table_name,
            segments,
            {t.AGGREGATE_KIND: images, t.RECORD_KIND: stored},
        )


def _stream_shard(shard: "ShardTypeDef") -> StreamShard:
    numbers = shard["SequenceNumberRange"]
    return StreamShard(
        shard["ShardId"],
        shard.get("ParentShardId"),
        numbers["StartingSequenceNumber"],
        numbers.get("EndingSequenceNumber"),
    )
