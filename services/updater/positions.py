"""Where each stream shard is to be read from, and when a checkpoint can no longer be
trusted because the stream dropped records it had not read (24-hour retention)."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

REBUILD_HINT = "run `wallet update --rebuild` to rebuild the read model from the table"


class CheckpointLost(Exception):
    """Stream records the read model needs are gone; only a rebuild recovers."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; {REBUILD_HINT}")


@dataclass(frozen=True)
class ShardPosition:
    """How far one shard has been read: after `sequence_number` (None: from its start);
    `finished` once a closed shard has been read to its end."""

    shard_id: str
    sequence_number: str | None = None
    finished: bool = False


@dataclass(frozen=True)
class StreamShard:
    shard_id: str
    parent_shard_id: str | None


@dataclass(frozen=True)
class AggregateImage:
    """The newest state of one DynamoDB aggregate item."""

    wallet_id: str
    bucket: datetime
    shard: int
    amount: Decimal
    record_count: int

    @property
    def key(self) -> tuple[str, datetime, int]:
        return (self.wallet_id, self.bucket, self.shard)


def keep_newest(
    images: dict[tuple[str, datetime, int], AggregateImage], image: AggregateImage
) -> None:
    """Keeps the image with the larger count per item: counts only grow, so that is the
    newest, whatever order the shards were read in."""
    current = images.get(image.key)
    if current is None or image.record_count > current.record_count:
        images[image.key] = image


def plan_reads(
    shards: list[StreamShard],
    checkpoints: dict[str, ShardPosition],
    *,
    other_streams_checkpointed: bool,
) -> list[ShardPosition]:
    """The position to read each unfinished shard of the stream from.

    Raises CheckpointLost when an unfinished checkpointed shard has left the stream, when a
    shard's parent was never read and is gone (also on a first pass), or when only another
    stream was followed.
    """
    present = {shard.shard_id for shard in shards}
    if not checkpoints and other_streams_checkpointed:
        raise CheckpointLost("the table's stream changed since the last pass")
    if not checkpoints and any(
        shard.parent_shard_id and shard.parent_shard_id not in present for shard in shards
    ):
        # A shard whose parent is gone: the stream no longer reaches back to the table's
        # first records, so a first pass from it would silently miss some.
        raise CheckpointLost(
            "the read model has never followed this stream, which has expired records"
        )
    for position in checkpoints.values():
        if not position.finished and position.shard_id not in present:
            raise CheckpointLost(
                f"stream shard {position.shard_id} expired before it was read to its end"
            )
    plan = []
    for shard in shards:
        known = checkpoints.get(shard.shard_id)
        if known is None:
            parent = shard.parent_shard_id
            if checkpoints and parent and parent not in present and parent not in checkpoints:
                raise CheckpointLost(f"stream shard {parent} expired before it was read")
            plan.append(ShardPosition(shard.shard_id))
        elif not known.finished:
            plan.append(known)
    return plan
