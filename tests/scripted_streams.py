"""A DynamoDB Streams client for what DynamoDB Local cannot do: trim a stream (records
older than 24 hours leave it) and retire shards (closed shards leave the listing).

It answers describe_stream, get_shard_iterator and get_records from the table's real
DynamoDB Local stream, except that:

- records up to a trim point are gone: an iterator at or after a sequence number before
  that point is refused with TrimmedDataAccessException, as DynamoDB Streams refuses it,
  and TRIM_HORIZON starts past them;
- `moved_start` lists a trimmed shard as starting at its oldest record left (whether AWS
  moves StartingSequenceNumber when it trims is not documented; detection must not depend
  on it);
- scripted closed shards without records can be added to the listing and removed again.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient

_CLOSED_ITERATOR = "scripted-closed-shard:"
_SEQUENCE_DIGITS = 21


def _sequence(number: int) -> str:
    return f"{number:0{_SEQUENCE_DIGITS}d}"


@dataclass
class ScriptedStreams:
    streams: "DynamoDBStreamsClient"
    stream_arn: str
    # Sequence numbers up to this one (of the stream's real shards) are trimmed.
    trimmed_through: int | None = None
    moved_start: bool = False
    closed_shards: list[str] = field(default_factory=list)
    iterator_requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exceptions(self) -> Any:
        return self.streams.exceptions

    def sequence_numbers(self) -> list[int]:
        """Every record's sequence number in the real stream, oldest first."""
        numbers: list[int] = []
        for shard in self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"][
            "Shards"
        ]:
            iterator: str | None = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn,
                ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            empty_pages = 0
            while iterator and empty_pages < 3:
                page = self.streams.get_records(ShardIterator=iterator)
                numbers.extend(int(r["dynamodb"]["SequenceNumber"]) for r in page["Records"])
                empty_pages = 0 if page["Records"] else empty_pages + 1
                iterator = page.get("NextShardIterator")
        return sorted(numbers)

    def trim_all_but_last(self, kept: int) -> None:
        """Trims every record the stream holds now but the last `kept`."""
        numbers = self.sequence_numbers()
        assert len(numbers) > kept, f"only {len(numbers)} records to trim"
        self.trimmed_through = numbers[-kept - 1]

    # The client's methods.

    def describe_stream(self, **request: Any) -> Any:
        answer = self.streams.describe_stream(**request)
        shards = answer["StreamDescription"]["Shards"]
        if self.moved_start and self.trimmed_through is not None:
            for shard in shards:
                numbers = shard["SequenceNumberRange"]
                if int(numbers["StartingSequenceNumber"]) <= self.trimmed_through:
                    numbers["StartingSequenceNumber"] = _sequence(self.trimmed_through + 1)
        shards.extend(
            {
                "ShardId": shard_id,
                "SequenceNumberRange": {
                    "StartingSequenceNumber": _sequence(1),
                    "EndingSequenceNumber": _sequence(1),
                },
            }
            for shard_id in self.closed_shards
        )
        return answer

    def get_shard_iterator(self, **request: Any) -> Any:
        self.iterator_requests.append(request)
        if request["ShardId"] in self.closed_shards:
            return {"ShardIterator": _CLOSED_ITERATOR + request["ShardId"]}
        kind = request["ShardIteratorType"]
        trimmed = self.trimmed_through
        if trimmed is not None:
            if kind == "TRIM_HORIZON":
                request = {
                    **request,
                    "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                    "SequenceNumber": _sequence(trimmed),
                }
            elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                first_wanted = int(request["SequenceNumber"]) + (kind == "AFTER_SEQUENCE_NUMBER")
                if first_wanted <= trimmed:
                    raise self.exceptions.TrimmedDataAccessException(
                        {
                            "Error": {
                                "Code": "TrimmedDataAccessException",
                                "Message": "The operation attempted to read past the oldest "
                                "stream record in a shard.",
                            }
                        },
                        "GetShardIterator",
                    )
        return self.streams.get_shard_iterator(**request)

    def get_records(self, **request: Any) -> Any:
        if request["ShardIterator"].startswith(_CLOSED_ITERATOR):
            return {"Records": []}  # no NextShardIterator: closed and read to its end
        return self.streams.get_records(**request)
