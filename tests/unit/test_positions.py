"""Where the updater reads each stream shard from, when a checkpoint can no longer be
trusted or is spent, which of several images of one aggregate item is kept, and what as_of
a pass may claim."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain.aggregates import AggregateImage
from services.updater.positions import (
    CheckpointLost,
    ShardPosition,
    StreamShard,
    gone_shards,
    keep_newest,
    pass_as_of,
    plan_reads,
    rebuild_position,
)

REBUILD = "wallet update --rebuild"
BUCKET = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)

# A stream whose first shard was split: root → left, right; left closed into left-next.
ROOT = StreamShard("shardId-root", None, "000001", "000099")
LEFT = StreamShard("shardId-left", "shardId-root", "000100", "000299")
RIGHT = StreamShard("shardId-right", "shardId-root", "000150")
LEFT_NEXT = StreamShard("shardId-left-next", "shardId-left", "000300")


def at_start(shard: StreamShard) -> ShardPosition:
    return ShardPosition(shard.shard_id, shard.starting_sequence_number, at_sequence_number=True)


def positions(plan: list[ShardPosition]) -> dict[str, ShardPosition]:
    by_shard = {position.shard_id: position for position in plan}
    assert len(by_shard) == len(plan), f"a shard is planned twice: {plan}"
    return by_shard


# plan_reads ----------------------------------------------------------------------------


def test_new_stream_reads_every_shard_at_its_starting_sequence_number() -> None:
    # Never from the trim horizon: at a trimmed start the stream refuses, so it is noticed.
    plan = plan_reads([ROOT, LEFT, RIGHT], {}, other_streams_checkpointed=False)

    assert positions(plan) == {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000001", at_sequence_number=True),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000100", at_sequence_number=True),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000150", at_sequence_number=True),
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
        RIGHT.shard_id: at_start(RIGHT),
    }


def test_checkpoint_at_a_sequence_number_resumes_there() -> None:
    # A shard read empty, or restarted by a rebuild: its stored start, not the listed one
    # (which a stream that trimmed the shard might list differently).
    stored = ShardPosition(RIGHT.shard_id, "000140", at_sequence_number=True)

    plan = plan_reads([RIGHT], {RIGHT.shard_id: stored}, other_streams_checkpointed=False)

    assert plan == [stored]


def test_checkpoint_from_before_at_sequence_numbers_resumes_at_the_shard_start() -> None:
    # Written by a rebuild or an empty read before migration 0002: no sequence number.
    checkpoints = {ROOT.shard_id: ShardPosition(ROOT.shard_id, None)}

    plan = plan_reads([ROOT], checkpoints, other_streams_checkpointed=False)

    assert plan == [at_start(ROOT)]


def test_finished_shards_are_skipped() -> None:
    checkpoints = {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000100", True),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000300", True),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200", False),
    }

    plan = plan_reads([ROOT, LEFT, RIGHT, LEFT_NEXT], checkpoints, other_streams_checkpointed=False)

    assert positions(plan) == {
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200", False),
        LEFT_NEXT.shard_id: at_start(LEFT_NEXT),
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
        RIGHT.shard_id: at_start(RIGHT),
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


def test_unfinished_checkpoint_never_read_past_its_start_missing_is_lost_too() -> None:
    checkpoints = {ROOT.shard_id: at_start(ROOT)}

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
        LEFT_NEXT.shard_id: at_start(LEFT_NEXT),
    }


def test_checkpoints_only_for_another_stream_are_a_lost_checkpoint() -> None:
    # The table's stream was replaced (disabled and enabled again, or the table recreated).
    with pytest.raises(CheckpointLost, match=REBUILD):
        plan_reads([ROOT, LEFT, RIGHT], {}, other_streams_checkpointed=True)


# gone_shards ---------------------------------------------------------------------------


def test_finished_checkpoints_of_shards_the_stream_no_longer_lists_are_gone() -> None:
    checkpoints = {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000099", finished=True),
        LEFT.shard_id: ShardPosition(LEFT.shard_id, "000299", finished=True),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200"),
    }

    assert gone_shards([LEFT, RIGHT, LEFT_NEXT], checkpoints) == [ROOT.shard_id]
    assert gone_shards([ROOT, LEFT, RIGHT, LEFT_NEXT], checkpoints) == []


def test_pruning_a_gone_parent_keeps_its_checkpointed_child_planned() -> None:
    # The pass that prunes root stores left's and right's positions in the same commit, so
    # the next one still finds the parents of the shards it plans.
    checkpoints = {
        ROOT.shard_id: ShardPosition(ROOT.shard_id, "000099", finished=True),
        LEFT.shard_id: at_start(LEFT),
        RIGHT.shard_id: ShardPosition(RIGHT.shard_id, "000200"),
    }
    shards = [LEFT, RIGHT]
    assert gone_shards(shards, checkpoints) == [ROOT.shard_id]
    del checkpoints[ROOT.shard_id]

    plan = plan_reads(shards, checkpoints, other_streams_checkpointed=False)

    assert positions(plan) == {
        LEFT.shard_id: at_start(LEFT),
        RIGHT.shard_id: checkpoints[RIGHT.shard_id],
    }


# rebuild_position ----------------------------------------------------------------------


def test_a_rebuild_finishes_closed_shards() -> None:
    assert rebuild_position(LEFT, "000120") == ShardPosition(LEFT.shard_id, "000299", finished=True)


def test_a_rebuild_restarts_an_open_shard_at_its_oldest_record() -> None:
    # Records before it were trimmed (and scanned); reading resumes at a sequence number,
    # so a stream trimmed past it before the next pass is noticed.
    assert rebuild_position(RIGHT, "000170") == ShardPosition(
        RIGHT.shard_id, "000170", at_sequence_number=True
    )
    assert rebuild_position(RIGHT, None) == at_start(RIGHT)


# pass_as_of ----------------------------------------------------------------------------

LISTED_AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
ALLOWANCE = timedelta(seconds=5)


def test_a_pass_that_caught_up_everywhere_claims_the_instant_before_listing() -> None:
    as_of = pass_as_of(LISTED_AT, caught_up=True, delivery_allowance=ALLOWANCE, previous=None)

    assert as_of == LISTED_AT


def test_a_pass_that_found_a_shard_quiet_allows_for_records_still_in_delivery() -> None:
    as_of = pass_as_of(LISTED_AT, caught_up=False, delivery_allowance=ALLOWANCE, previous=None)

    assert as_of == LISTED_AT - ALLOWANCE


@pytest.mark.parametrize("caught_up", [True, False])
def test_as_of_never_goes_back(caught_up: bool) -> None:
    later = LISTED_AT + timedelta(seconds=1)

    as_of = pass_as_of(LISTED_AT, caught_up=caught_up, delivery_allowance=ALLOWANCE, previous=later)

    assert as_of == later
    earlier = LISTED_AT - timedelta(hours=1)
    assert pass_as_of(
        LISTED_AT, caught_up=caught_up, delivery_allowance=ALLOWANCE, previous=earlier
    ) == (LISTED_AT if caught_up else LISTED_AT - ALLOWANCE)


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
