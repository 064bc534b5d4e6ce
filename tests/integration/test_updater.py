"""The updater in this process, wired as `wallet update` wires it, on a real DynamoDB Local
stream and a real PostgreSQL: passes project the table's aggregate items exactly, late
records and replays are handled by the larger-count rule, a rebuild equals a stream-built
read model, a lost checkpoint is detected, one updater at a time, and the migrations match
the read model's table definitions."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from mypy_boto3_dynamodb.client import DynamoDBClient
from sqlalchemy import Engine

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.read_model import metadata
from services.ledger.adapters.write_store import DynamoWriteStore, dynamodb_client
from services.ledger.domain.records import Deposit, Recorded
from services.ledger.settings import Settings
from services.updater.positions import AggregateImage, CheckpointLost, ShardPosition
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.stream_reader import StreamBatch, StreamReader, streams_client
from tests.updater_support import (
    SHARD_COUNT,
    START,
    assert_consistent,
    assert_exact,
    make_deposits,
    read_model,
    stream_arn,
    total_records,
    write_deposits,
)

SEGMENTS = 4
REBUILD = "wallet update --rebuild"
# A shard id of DynamoDB's shape that no stream of these tests has.
GONE_SHARD = "shardId-00000001700000000000-0123abcd"


@dataclass(frozen=True)
class Updater:
    projector: Projector
    store: ProjectionStore
    reader: StreamReader


MakeUpdater = Callable[..., Updater]


@pytest.fixture
def make_updater(settings: Settings) -> Iterator[MakeUpdater]:
    """Builds the updater over a database as services/updater/main.py does."""
    engines: list[Engine] = []

    def make(database_url: str, before_commit: Callable[[], None] = lambda: None) -> Updater:
        engine = create_database_engine(database_url, pool_size=2)
        engines.append(engine)
        store = ProjectionStore(engine)
        reader = StreamReader(dynamodb_client(), streams_client(), settings.table_name)
        return Updater(Projector(reader, store, before_commit), store, reader)

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def updater(make_updater: MakeUpdater, database_url: str) -> Updater:
    return make_updater(database_url)


def delete_checkpoints(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute("DELETE FROM stream_checkpoints")


def insert_checkpoint(
    database_url: str, arn: str, shard_id: str, sequence: str | None, finished: bool
) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "INSERT INTO stream_checkpoints (stream_arn, shard_id, sequence_number, finished)"
            " VALUES (%s, %s, %s, %s)",
            (arn, shard_id, sequence, finished),
        )


def test_a_pass_projects_the_table_exactly(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    assert read_model(database_url).is_empty()
    write_deposits(dynamodb, table_name, make_deposits(120, prefix="first"))

    report = updater.projector.run_pass()

    model = assert_exact(dynamodb, table_name, database_url)
    assert total_records(model) == 120
    assert len({wallet for wallet, _ in model.buckets}) == 4
    assert len({day for _, day in model.days}) == 3
    assert max(count for _, count in model.shards.values()) > 1, "no item saw two records"
    # Each deposit is one transaction of two items: two stream records.
    assert report.records_read == 240
    assert report.items == len(model.shards)
    assert report.changed_buckets == len(model.buckets)
    arn = stream_arn(dynamodb, table_name)
    shards = {shard.shard_id for shard in updater.reader.shards(arn)}
    assert {key for key in model.checkpoints} == {(arn, shard) for shard in shards}
    assert all(sequence is not None for sequence, _ in model.checkpoints.values())


def test_a_pass_with_nothing_new_changes_nothing_but_as_of(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(60, prefix="once"))
    updater.projector.run_pass()
    first = assert_exact(dynamodb, table_name, database_url)

    report = updater.projector.run_pass()

    second = assert_exact(dynamodb, table_name, database_url)
    assert (report.records_read, report.items, report.changed_buckets) == (0, 0, 0)
    assert second.totals() == first.totals()
    assert second.checkpoints == first.checkpoints
    assert first.as_of is not None
    assert second.as_of is not None
    assert second.as_of > first.as_of


def test_an_empty_table_projects_nothing_but_finishes_the_pass(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    updater.projector.run_pass()

    model = assert_exact(dynamodb, table_name, database_url)
    assert model.totals() == ({}, {}, {})


def test_a_late_record_updates_its_bucket_its_day_and_later_balances(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(80, prefix="early", days=4))
    updater.projector.run_pass()
    before = assert_exact(dynamodb, table_name, database_url)
    wallet = "wallet-1"
    days = sorted(day for other, day in before.days if other == wallet)
    assert len(days) == 4
    # Into a bucket of the wallet's second day that was projected already...
    bucket = min(b for w, b in before.buckets if w == wallet and b.date() == days[1])
    late = Deposit(wallet, "late-1", bucket + timedelta(minutes=3), Decimal("123.45"))
    # ...and into a day before all others, which shifts every balance of the wallet.
    earliest = Deposit(wallet, "late-2", START - timedelta(hours=20), Decimal("0.05"))
    write_deposits(dynamodb, table_name, [late, earliest])

    updater.projector.run_pass()

    after = assert_exact(dynamodb, table_name, database_url)
    assert total_records(after) == total_records(before) + 2
    assert after.buckets[(wallet, bucket)] == before.buckets[(wallet, bucket)] + late.amount
    assert after.buckets[(wallet, earliest.bucket)] == earliest.amount
    assert after.days[(wallet, earliest.bucket.date())] == (earliest.amount, earliest.amount)
    for day in days:
        amount, balance = before.days[(wallet, day)]
        added = late.amount if day == days[1] else Decimal(0)
        shift = earliest.amount + (late.amount if day >= days[1] else Decimal(0))
        assert after.days[(wallet, day)] == (amount + added, balance + shift), day
    others = {key: value for key, value in before.days.items() if key[0] != wallet}
    assert {key: value for key, value in after.days.items() if key[0] != wallet} == others


def test_replaying_the_stream_never_counts_twice(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(60, prefix="replayed"))
    updater.projector.run_pass()
    projected = assert_exact(dynamodb, table_name, database_url)

    for _ in range(2):
        delete_checkpoints(database_url)
        report = updater.projector.run_pass()

        replayed = assert_exact(dynamodb, table_name, database_url)
        assert report.records_read == 120, "the whole stream is read again"
        assert report.changed_buckets == 0
        assert replayed.totals() == projected.totals()
        assert replayed.checkpoints == projected.checkpoints

    write_deposits(dynamodb, table_name, make_deposits(20, prefix="after-replay"))
    updater.projector.run_pass()
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 80


def test_only_a_larger_count_replaces_a_row(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(60, prefix="counts", wallets=1, days=1))
    updater.projector.run_pass()
    before = assert_exact(dynamodb, table_name, database_url)
    arn = stream_arn(dynamodb, table_name)
    (wallet, bucket, shard), (amount, count) = max(
        before.shards.items(), key=lambda entry: entry[1][1]
    )
    assert count >= 2

    def apply(amount: Decimal, count: int) -> int:
        image = AggregateImage(wallet, bucket, shard, amount, count)
        return updater.store.apply([image], stream_arn=arn, positions=[])

    # Older and equal counts (stale or replayed images) change nothing, whatever they say.
    assert apply(amount - 1, count - 1) == 0
    assert apply(amount + 1000, count) == 0
    unchanged = read_model(database_url)
    assert unchanged.totals() == before.totals()

    assert apply(amount + 7, count + 1) == 1
    newer = read_model(database_url)
    assert newer.shards[(wallet, bucket, shard)] == (amount + 7, count + 1)
    assert newer.buckets[(wallet, bucket)] == before.buckets[(wallet, bucket)] + 7
    assert_consistent(newer)


def test_a_pass_that_fails_before_commit_writes_nothing(
    make_updater: MakeUpdater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash

    write_deposits(dynamodb, table_name, make_deposits(40, prefix="crash-1"))
    make_updater(database_url).projector.run_pass()
    before = assert_exact(dynamodb, table_name, database_url)
    write_deposits(dynamodb, table_name, make_deposits(40, prefix="crash-2"))

    with pytest.raises(Crash):
        make_updater(database_url, before_commit=crash).projector.run_pass()

    assert read_model(database_url) == before
    make_updater(database_url).projector.run_pass()
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 80


def test_rebuild_into_an_empty_database_equals_the_stream_built_read_model(
    make_updater: MakeUpdater,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
    another_database_url: str,
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(100, prefix="rebuilt"))
    streamed, rebuilt = make_updater(database_url), make_updater(another_database_url)
    streamed.projector.run_pass()
    assert read_model(another_database_url).is_empty()

    report = rebuilt.projector.rebuild(SEGMENTS)

    from_stream = assert_exact(dynamodb, table_name, database_url)
    from_scan = assert_exact(dynamodb, table_name, another_database_url)
    assert from_scan.totals() == from_stream.totals()
    assert report.items == len(from_scan.shards)
    arn = stream_arn(dynamodb, table_name)
    assert from_scan.checkpoints == {
        (arn, shard.shard_id): (None, False) for shard in rebuilt.reader.shards(arn)
    }

    # Both go on from the stream alike.
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="after-rebuild"))
    streamed.projector.run_pass()
    rebuilt.projector.run_pass()
    assert (
        assert_exact(dynamodb, table_name, another_database_url).totals()
        == assert_exact(dynamodb, table_name, database_url).totals()
    )


def test_a_checkpoint_that_left_the_stream_is_reported_and_rebuild_recovers(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(40, prefix="kept"))
    updater.projector.run_pass()
    arn = stream_arn(dynamodb, table_name)
    insert_checkpoint(database_url, arn, GONE_SHARD, "4242", finished=False)
    before = read_model(database_url)
    write_deposits(dynamodb, table_name, make_deposits(40, prefix="unread"))

    with pytest.raises(CheckpointLost, match=REBUILD) as raised:
        updater.projector.run_pass()

    assert GONE_SHARD in str(raised.value)
    assert read_model(database_url) == before, "a lost checkpoint must not write anything"

    updater.projector.rebuild(SEGMENTS)

    rebuilt = assert_exact(dynamodb, table_name, database_url)
    assert total_records(rebuilt) == 80
    assert (arn, GONE_SHARD) not in rebuilt.checkpoints
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="after-recovery"))
    updater.projector.run_pass()
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 100


def test_checkpoints_of_another_stream_only_are_reported(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="other-stream"))
    other = stream_arn(dynamodb, table_name).replace("/stream/", "/stream/1999-")
    insert_checkpoint(database_url, other, GONE_SHARD, "77", finished=False)

    with pytest.raises(CheckpointLost, match=REBUILD):
        updater.projector.run_pass()

    assert read_model(database_url).shards == {}
    updater.projector.rebuild(SEGMENTS)
    updater.projector.run_pass()
    model = assert_exact(dynamodb, table_name, database_url)
    assert {arn for arn, _ in model.checkpoints} == {stream_arn(dynamodb, table_name)}


def test_one_updater_at_a_time_per_database(
    make_updater: MakeUpdater, database_url: str, another_database_url: str
) -> None:
    first, second = make_updater(database_url).store, make_updater(database_url).store

    with first.exclusive() as locked:
        assert locked
        with second.exclusive() as also_locked:
            assert also_locked is False
        with first.exclusive() as again_from_the_same_engine:
            assert again_from_the_same_engine is False
        # Another read model (database) has its own updater.
        with make_updater(another_database_url).store.exclusive() as elsewhere:
            assert elsewhere is True

    with second.exclusive() as after_release:
        assert after_release is True
    with first.exclusive() as after_second_released:
        assert after_second_released is True


def test_migrations_create_what_the_table_definitions_say(database_url: str) -> None:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_an_updated_read_model_never_loses_its_status_row(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    # read_model() fails unless projection_status holds exactly the row id 1.
    assert read_model(database_url).as_of is None
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="status"))
    updater.projector.rebuild(SEGMENTS)
    rebuilt = read_model(database_url)
    updater.projector.run_pass()
    passed = read_model(database_url)
    assert rebuilt.as_of is not None
    assert passed.as_of is not None
    assert passed.as_of > rebuilt.as_of
    assert replace(passed, as_of=None, checkpoints={}) == replace(
        rebuilt, as_of=None, checkpoints={}
    )


class WritingWhileReading(StreamReader):
    """The real reader, plus one deposit recorded right after the stream was read (or the
    table scanned), before the updater commits: a deposit that lands mid-pass."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str, deposit: Deposit) -> None:
        super().__init__(dynamodb, streams_client(), table_name)
        self._store = DynamoWriteStore(dynamodb, table_name, SHARD_COUNT)
        self._deposit = deposit
        self.recorded_at: list[datetime] = []

    def _record(self) -> None:
        outcome = self._store.record(self._deposit)
        assert isinstance(outcome, Recorded)
        self.recorded_at.append(outcome.record.recorded_at)

    def read(self, stream_arn: str, plan: list[ShardPosition]) -> StreamBatch:
        batch = super().read(stream_arn, plan)
        self._record()
        return batch

    def scan_aggregates(
        self, segments: int, consume: Callable[[list[AggregateImage]], None]
    ) -> None:
        super().scan_aggregates(segments, consume)
        self._record()


@pytest.mark.parametrize("mode", ["pass", "rebuild"])
def test_no_record_recorded_before_as_of_is_missing(
    mode: str, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    # query.proto: as_of is "when the updater last finished a pass: records after it may be
    # missing"; so none recorded before it may be.
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="settled"))
    mid_pass = Deposit("wallet-0", "mid-pass", START + timedelta(hours=1), Decimal("1.00"))
    reader = WritingWhileReading(dynamodb_client(), table_name, mid_pass)
    engine = create_database_engine(database_url, pool_size=2)
    try:
        projector = Projector(reader, ProjectionStore(engine))
        if mode == "pass":
            projector.run_pass()
        else:
            projector.rebuild(SEGMENTS)
    finally:
        engine.dispose()

    model = read_model(database_url)
    assert model.as_of is not None
    [recorded_at] = reader.recorded_at
    recorded_before_as_of = 20 + (1 if recorded_at < model.as_of else 0)
    assert total_records(model) == recorded_before_as_of, (
        f"as_of {model.as_of.isoformat()} is later than {recorded_at.isoformat()}, when a "
        "deposit missing from the read model was recorded"
    )
