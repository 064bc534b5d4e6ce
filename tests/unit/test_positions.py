"""Where the updater reads each stream shard from, when a checkpoint can no longer be
trusted, and which of several images of one aggregate item is kept."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.updater.positions import (
    AggregateImage,
    CheckpointLost,
    ShardPosition,
    StreamShard,
    keep_newest,
    plan_reads,
)

REBUILD = "wallet update --rebuild"
BUCKET = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)

# A stream whose first shard was split: root → left, right; left closed into left-next.
ROOT = StreamShard("shardId-root", None)
LEFT = StreamShard("shardId-left", "shardId-root")
RIGHT = StreamShard("shardId-right", "shardId-root")
LEFT_NEXT = StreamShard("shardId-left-next", "shardId-left")


def positions(plan: list[ShardPosition]) -> dict[str, ShardPosition]:
    by_shard = {position.shard_id: position for position in plan}
    assert len(by_shard) == len(plan), f"a shard is planned twice: {plan}"
    return by_shard


# plan_reads ----------------------------------------------------------------------------


def test_new_stream_reads_every_shard_from_its_start() -> None:
    plan = plan_reads([ROOT, LEFT, RIGHT], {}, other_streams_checkpointed=False)

    assert positions(plan) == {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, None, False),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, None, False),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, None, False),
    }


def test_checkpointed_shards_resume_after_their_sequence_number() -> None:
    checkpoints = {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000100", False),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000250", False),
    }

    plan = plan_reads([ROOT, LEFT, RIGHT], checkpoints, other_streams_checkpointed=False)

    assert positions(plan) == {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000100", False),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000250", False),
        # Never read yet (its parent is checkpointed): from its start.
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, None, False),
    }


def test_checkpoint_without_sequence_number_resumes_from_the_start() -> None:
    # What a rebuild leaves: the shards present at the scan, from their start.
    checkpoints = {ROOT.shard_id: ShardPosition(ROOT.shard_id, None, False)}

    plan = plan_reads([ROOT], checkpoints, other_streams_checkpointed=False)

    assert plan == [ShardPosition(ROOT.shard_id, None, False)]


def test_finished_shards_are_skipped() -> None:
    checkpoints = {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000100", True),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000300", True),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200", False),
    }

    plan = plan_reads([ROOT, LEFT, RIGHT, LEFT_NEXT], checkpoints, other_streams_checkpointed=False)

    assert positions(plan) == {
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200", False),
        LEFT_NEXT.shard_id: ShardPosition(LEFT_NEXT.shard_id, None, False),
    }


def test_finished_shard_that_left_the_stream_is_no_loss() -> None:
    # root was read to its end, then expired: nothing it held is missing.
    checkpoints = {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000100", True),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000300", False),
    }

    plan = plan_reads([LEFT, RIGHT], checkpoints, other_streams_checkpointed=False)

    assert positions(plan) == {
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000300", False),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, None, False),
    }


def test_unfinished_checkpointed_shard_missing_from_the_stream_is_a_lost_checkpoint() -> None:
    checkpoints = {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000100", True),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000300", False),
    }

    with pytest.raises(CheckpointLost) as raised:
        plan_reads([RIGHT, LEFT_NEXT], checkpoints, other_streams_checkpointed=False)

    message = str(raised.value)
    assert REBUILD in message
    assert LEFT.shard_id in message


def test_unfinished_checkpoint_without_sequence_number_missing_is_lost_too() -> None:
    checkpoints = {ROOT.shard_id: ShardPosition(ROOT.shard_id, None, False)}

    with pytest.raises(CheckpointLost, match=REBUILD):
        plan_reads([LEFT, RIGHT], checkpoints, other_streams_checkpointed=False)


def test_shard_whose_parent_was_never_read_and_is_gone_is_a_lost_checkpoint() -> None:
    # right was followed; left (a sibling) was never checkpointed and has expired, so
    # left-next's parent holds records nobody read.
    checkpoints = {RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200", False)}

    with pytest.raises(CheckpointLost) as raised:
        plan_reads([RIGHT, LEFT_NEXT], checkpoints, other_streams_checkpointed=False)

    message = str(raised.value)
    assert REBUILD in message
    assert LEFT.shard_id in message


def test_shard_whose_parent_is_gone_but_was_read_to_its_end_is_planned() -> None:
    checkpoints = {
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000300", True),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200", False),
    }

    plan = plan_reads([RIGHT, LEFT_NEXT], checkpoints, other_streams_checkpointed=False)

    assert positions(plan) == {
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200", False),
        LEFT_NEXT.shard_id: ShardPosition(LEFT_NEXT.shard_id, None, False),
    }


def test_checkpoints_only_for_another_stream_are_a_lost_checkpoint() -> None:
    # The table's stream was replaced (disabled and enabled again, or the table recreated).
    with pytest.raises(CheckpointLost, match=REBUILD):
        plan_reads([ROOT, LEFT, RIGHT], {}, other_streams_checkpointed=True)


# keep_newest ---------------------------------------------------------------------------


def image(
    count: int, *, wallet: str = "w1", shard: int = 0, bucket: datetime = BUCKET
) -> AggregateImage:
    # The amount is a function of the count: every image of one item state is identical.
    return AggregateImage(wallet, bucket, shard, Decimal(count) / 100 + 1, count)


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
def test_keep_newest_keeps_the_larger_count_in_either_order(order: tuple[int, int]) -> None:
    older, newer = image(3), image(7)
    images: dict[tuple[str, datetime, int], AggregateImage] = {}

    for index in order:
        keep_newest(images, older if index == 1 else newer)

    assert images == {newer.key: newer}


def test_keep_newest_keeps_items_apart() -> None:
    images: dict[tuple[str, datetime, int], AggregateImage] = {}
    distinct = [
        image(5),
        image(2, wallet="w2"),
        image(4, shard=1),
        image(1, bucket=BUCKET + timedelta(minutes=15)),
    ]

    for each in distinct:
        keep_newest(images, each)

    assert images == {each.key: each for each in distinct}


ITEMS = [("w1", 0, 0), ("w1", 1, 0), ("w2", 0, 0), ("w1", 0, 1)]


@given(
    st.lists(
        st.tuples(st.sampled_from(range(len(ITEMS))), st.integers(1, 10**12)),
        unique=True,
        min_size=1,
        max_size=40,
    ).flatmap(st.permutations)
)
def test_any_order_of_images_keeps_the_one_with_the_largest_count(
    stream: list[tuple[int, int]],
) -> None:
    def make(item: int, count: int) -> AggregateImage:
        wallet, offset, shard = ITEMS[item]
        return image(
            count, wallet=wallet, shard=shard, bucket=BUCKET + timedelta(minutes=15 * offset)
        )

    images: dict[tuple[str, datetime, int], AggregateImage] = {}
    for item, count in stream:
        keep_newest(images, make(item, count))

    newest = {item: max(count for other, count in stream if other == item) for item, _ in stream}
    assert images == {make(item, count).key: make(item, count) for item, count in newest.items()}
