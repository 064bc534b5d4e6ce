"""A stream that dropped records the read model has not read is always reported, never
skipped: for shards with a stored sequence number, shards never read or read empty, and
every shard right after a rebuild. A rebuild recovers and later trimming is detected again;
checkpoints of shards gone from the stream are pruned.

DynamoDB Local never trims its stream, so the updater reads it here through a scripted
client (tests/scripted_streams.py) that trims it, driving the real Projector and
ProjectionStore against a real PostgreSQL."""

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import pytest
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.write_store import dynamodb_client
from services.platform.settings import UpdaterSettings
from services.updater import main
from services.updater.main import EXIT_CHECKPOINT_LOST, run_updater
from services.updater.positions import CheckpointLost, ShardPosition
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.stream_reader import StreamReader, streams_client
from tests.scripted_streams import ScriptedStreams
from tests.updater_support import (
    assert_exact,
    make_deposits,
    read_model,
    stream_arn,
    total_records,
    write_deposits,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient

REBUILD = "wallet update --rebuild"
SEGMENTS = 2
CLOSED_SHARD = "shardId-00000001600000000000-c10sed00"


@pytest.fixture
def scripted(dynamodb: DynamoDBClient, table_name: str) -> ScriptedStreams:
    return ScriptedStreams(streams_client(), stream_arn(dynamodb, table_name))


@pytest.fixture
def projector(scripted: ScriptedStreams, table_name: str, database_url: str) -> Iterator[Projector]:
    """The updater as `wallet update` wires it, reading the scripted stream."""
    engine = create_database_engine(database_url, pool_size=2)
    streams = cast("DynamoDBStreamsClient", scripted)
    yield Projector(StreamReader(dynamodb_client(), streams, table_name), ProjectionStore(engine))
    engine.dispose()


def test_a_first_pass_over_a_trimmed_stream_says_so(
    projector: Projector,
    scripted: ScriptedStreams,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    # A new read model for a table whose stream has already dropped its first records.
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="before-first-pass"))
    scripted.trim_all_but_last(4)

    with pytest.raises(CheckpointLost, match=REBUILD):
        projector.run_pass()

    assert read_model(database_url).is_empty()


@pytest.mark.parametrize("moved_start", [False, True])
def test_a_shard_read_empty_then_trimmed_says_so(
    moved_start: bool,
    projector: Projector,
    scripted: ScriptedStreams,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    projector.run_pass()
    empty = read_model(database_url)
    # An outage longer than the stream's retention: records came and were trimmed.
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="while-away"))
    scripted.trim_all_but_last(4)
    scripted.moved_start = moved_start

    with pytest.raises(CheckpointLost, match=REBUILD):
        projector.run_pass()

    assert read_model(database_url) == empty
    [checkpoint] = empty.checkpoints.values()
    assert checkpoint.at_sequence_number, "an empty read keeps the shard's start"


@pytest.mark.parametrize("moved_start", [False, True])
def test_checkpoints_right_after_a_rebuild_detect_trimming(
    moved_start: bool,
    projector: Projector,
    scripted: ScriptedStreams,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="scanned"))
    projector.rebuild(SEGMENTS)
    rebuilt = read_model(database_url)
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="after-rebuild"))
    scripted.trim_all_but_last(4)
    scripted.moved_start = moved_start

    with pytest.raises(CheckpointLost, match=REBUILD):
        projector.run_pass()

    assert read_model(database_url) == rebuilt
    assert all(
        checkpoint.at_sequence_number and checkpoint.sequence_number is not None
        for checkpoint in rebuilt.checkpoints.values()
    )


def test_a_checkpoint_after_a_trimmed_record_says_so(
    projector: Projector,
    scripted: ScriptedStreams,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="read"))
    projector.run_pass()
    projected = read_model(database_url)
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="unread"))
    scripted.trim_all_but_last(4)

    with pytest.raises(CheckpointLost, match=REBUILD):
        projector.run_pass()

    assert read_model(database_url) == projected


def test_a_rebuild_recovers_a_trimmed_stream_and_trimming_is_detected_again(
    projector: Projector,
    scripted: ScriptedStreams,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="partly-trimmed"))
    scripted.trim_all_but_last(6)
    with pytest.raises(CheckpointLost):
        projector.run_pass()

    projector.rebuild(SEGMENTS)
    # The records the stream still holds are read again (larger counts only), the trimmed
    # ones are not asked for: the pass goes on.
    projector.run_pass()
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 20
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="after-recovery"))
    projector.run_pass()
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 30
    # Only the rebuild looked at the trim horizon, to find the oldest record left.
    assert sum(r["ShardIteratorType"] == "TRIM_HORIZON" for r in scripted.iterator_requests) == 1

    write_deposits(dynamodb, table_name, make_deposits(10, prefix="lost-again"))
    scripted.trim_all_but_last(2)
    with pytest.raises(CheckpointLost, match=REBUILD):
        projector.run_pass()


def test_wallet_update_exits_3_naming_rebuild_on_a_trimmed_stream_and_rebuild_recovers(
    scripted: ScriptedStreams,
    settings: UpdaterSettings,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(main, "streams_client", lambda: scripted)
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="exit-3"))
    scripted.trim_all_but_last(4)

    exit_code = run_updater(settings, database_url, follow=False, rebuild=False, segments=2)

    assert exit_code == EXIT_CHECKPOINT_LOST == 3
    assert "--rebuild" in capsys.readouterr().err
    assert run_updater(settings, database_url, follow=False, rebuild=True, segments=2) == 0
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 20


def test_checkpoints_of_shards_gone_from_the_stream_are_pruned(
    projector: Projector,
    scripted: ScriptedStreams,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    arn = stream_arn(dynamodb, table_name)
    scripted.closed_shards.append(CLOSED_SHARD)
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="pruned"))
    projector.run_pass()
    closed = read_model(database_url).checkpoints[(arn, CLOSED_SHARD)]
    assert closed.finished, closed

    # Its records aged out (24 hours after it closed): the stream no longer lists it.
    scripted.closed_shards.remove(CLOSED_SHARD)
    projector.run_pass()

    model = assert_exact(dynamodb, table_name, database_url)
    assert (arn, CLOSED_SHARD) not in model.checkpoints
    assert len(model.checkpoints) == 1
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="after-pruning"))
    projector.run_pass()
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 20


def test_a_checkpoint_without_a_sequence_number_from_before_0002_resumes_at_the_start(
    projector: Projector,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
) -> None:
    # What a rebuild or an empty read stored before migration 0002.
    engine = create_database_engine(database_url, pool_size=1)
    try:
        arn = stream_arn(dynamodb, table_name)
        [shard] = StreamReader(dynamodb_client(), streams_client(), table_name).shards(arn)
        ProjectionStore(engine).apply(
            [], stream_arn=arn, positions=[ShardPosition(shard.shard_id, None)]
        )
    finally:
        engine.dispose()
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="legacy"))

    projector.run_pass()

    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 10
