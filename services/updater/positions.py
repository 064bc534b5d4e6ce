"""Where each stream shard is to be read from, when a checkpoint can no longer be trusted
because the stream dropped records it had not read (24-hour retention), which checkpoints
are spent, and what a pass may claim to have read."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.ledger.domain.aggregates import AggregateImage

REBUILD_HINT = "run `wallet update --rebuild` to rebuild the read model from the table"


class CheckpointLost(Exception):
    """Stream records the read model needs are gone; only a rebuild recovers."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; {REBUILD_HINT}")


@dataclass(frozen=True)
class ShardPosition:
    """How far one shard has been read: the next record to read is the one at
    `sequence_number` when `at_sequence_number`, else the one after it; `finished` once a
    closed shard has been read to its end.

    Positions always name a sequence number, so that a stream trimmed past them is detected
    (DynamoDB Streams refuses an iterator at or after a trimmed record), where reading from
    the trim horizon would silently skip the trimmed records. Only a checkpoint stored
    before that rule (migration 0002) has none; plan_reads resumes it at its shard's start.
    """

    shard_id: str
    sequence_number: str | None
    finished: bool = False
    at_sequence_number: bool = False


@dataclass(frozen=True)
class StreamShard:
    """A shard as the stream lists it; `ending_sequence_number` is set once it is closed."""

    shard_id: str
    parent_shard_id: str | None
    starting_sequence_number: str
    ending_sequence_number: str | None = None

    def start(self) -> ShardPosition:
        """Before the shard's first record."""
        return ShardPosition(self.shard_id, self.starting_sequence_number, at_sequence_number=True)


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
    """The position to read each unfinished shard of the stream from: its checkpoint, or
    its start when it has none.

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
            plan.append(shard.start())
        elif known.sequence_number is None and not known.finished:
            plan.append(shard.start())
        elif not known.finished:
            plan.append(known)
    return plan


def rebuild_position(shard: StreamShard, oldest_sequence_number: str | None) -> ShardPosition:
    """Where the pass after a rebuild reads `shard` from, for a shard listed before the
    rebuild's scan began and the oldest record it still held then.

    A closed shard is finished: the scan saw every record it holds. An open one restarts
    at its oldest record: the scan saw the trimmed ones before it, which are over 24 hours
    old, and the next pass reads every change from there; should the stream trim that
    record before then, that pass says so. A shard that held no record restarts at its
    start."""
    if shard.ending_sequence_number is not None:
        return ShardPosition(shard.shard_id, shard.ending_sequence_number, finished=True)
    if oldest_sequence_number is None:
        return shard.start()
    return ShardPosition(shard.shard_id, oldest_sequence_number, at_sequence_number=True)


def gone_shards(shards: list[StreamShard], checkpoints: dict[str, ShardPosition]) -> list[str]:
    """The checkpointed shards the stream no longer lists: finished ones, as plan_reads has
    refused the others. Their checkpoints are spent (a stream never lists a shard again)."""
    present = {shard.shard_id for shard in shards}
    return sorted(shard_id for shard_id in checkpoints if shard_id not in present)


def pass_as_of(
    listed_at: datetime,
    *,
    caught_up: bool,
    delivery_allowance: timedelta,
    previous: datetime | None,
) -> datetime:
    """What a pass that read every shard to its end may claim: that every record
    acknowledged before the returned instant is in the read model.

    `listed_at` is the instant before the pass listed the shards. A shard read that ended by
    reading past the first record a LATEST iterator (taken after `listed_at`) yielded has
    read every record acknowledged before `listed_at`; a read that ended on empty pages, or
    at a closed shard's end, may have missed records the stream had yet to deliver (to it,
    or to a shard created after the listing), so then the claim is `delivery_allowance`
    earlier. A claim once made stays true (passes only add to the read model), so the
    result is never before `previous`.
    """
    claim = listed_at if caught_up else listed_at - delivery_allowance
    return claim if previous is None else max(previous, claim)
