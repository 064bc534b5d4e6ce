"""The updater in this process, wired as `wallet update` wires it, on a real DynamoDB Local
stream and a real PostgreSQL: passes project the table's aggregate items exactly, late
records and replays are handled by the larger-count rule, a rebuild equals a stream-built
read model and replaces one that is ahead of the table while queries go on answering, a
lost checkpoint is detected, long passes commit in chunks, as_of never claims more than
was read, one updater at a time, and the migrations match the read model's table
definitions. (A trimmed stream: tests/integration/test_trimmed_stream.py.)"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from mypy_boto3_dynamodb.client import DynamoDBClient
from sqlalchemy import Engine

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.read_model import metadata
from services.ledger.adapters.read_store import PostgresReadStore
from services.ledger.adapters.write_store import DynamoWriteStore, dynamodb_client
from services.ledger.domain.aggregates import AggregateImage
from services.ledger.domain.records import Deposit, Recorded, StoredRecord
from services.platform.settings import TableSettings
from services.updater.positions import CheckpointLost, ShardPosition
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.stream_reader import StreamBatch, StreamReader, streams_client
from tests.history_oracle import exact_sum
from tests.scripted_streams import ScriptedStreams
from tests.updater_support import (
    SHARD_COUNT,
    START,
    Checkpoint,
    ReadModel,
    assert_consistent,
    assert_exact,
    assert_history_exact,
    make_deposits,
    read_model,
    reconcile_differences,
    stream_arn,
    total_records,
    write_deposits,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient

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
def make_updater(settings: TableSettings) -> Iterator[MakeUpdater]:
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
    assert all(
        checkpoint.sequence_number is not None and not checkpoint.at_sequence_number
        for checkpoint in model.checkpoints.values()
    )


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
    assert model.totals() == ({}, {}, {}, {})


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
    # DynamoDB Local trims nothing: each shard restarts at its first record.
    assert from_scan.checkpoints == {
        (arn, shard.shard_id): Checkpoint(shard.starting_sequence_number, False, True)
        for shard in rebuilt.reader.shards(arn)
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
    assert passed.as_of >= rebuilt.as_of
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

    def scan_table(
        self,
        segments: int,
        aggregates: Callable[[list[AggregateImage]], None],
        records: Callable[[list[StoredRecord]], None],
    ) -> None:
        super().scan_table(segments, aggregates, records)
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


# A rebuild replaces the read model ------------------------------------------------------

AWAY = "wallet-restored-away"


def put_read_model_ahead(store: ProjectionStore, arn: str, model: ReadModel) -> None:
    """What a point-in-time restore of the table leaves: an item whose row in the read
    model is ahead of the table (more records, more money), a row for an item the table no
    longer has, and the records of both that the table no longer has."""
    (wallet, bucket, shard), (amount, count) = max(
        model.shards.items(), key=lambda entry: entry[1][1]
    )
    lost = [
        Deposit(wallet, f"lost-{index}", bucket + timedelta(minutes=index), amount)
        for index, amount in enumerate([Decimal(30), Decimal(30), Decimal(40)])
    ] + [
        Deposit(AWAY, f"lost-away-{index}", START, amount)
        for index, amount in enumerate([Decimal("5"), Decimal("0.25")])
    ]
    store.apply(
        [
            AggregateImage(wallet, bucket, shard, amount + 100, count + 3),
            AggregateImage(AWAY, START, 0, Decimal("5.25"), 2),
        ],
        records=[StoredRecord(deposit, recorded_at=START) for deposit in lost],
        stream_arn=arn,
        positions=[],
    )


def test_a_rebuild_replaces_a_read_model_that_is_ahead_of_the_table(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    deposits = make_deposits(60, prefix="restored")
    write_deposits(dynamodb, table_name, deposits)
    updater.projector.run_pass()
    projected = assert_exact(dynamodb, table_name, database_url)
    put_read_model_ahead(updater.store, stream_arn(dynamodb, table_name), projected)
    # Two aggregates ahead of the table, and five records it does not hold.
    differences = reconcile_differences(dynamodb, table_name, database_url)
    assert len(differences) == 7, differences
    assert sum(difference.startswith("record ") for difference in differences) == 5

    report = updater.projector.rebuild(SEGMENTS)

    assert reconcile_differences(dynamodb, table_name, database_url) == []
    rebuilt = assert_exact(dynamodb, table_name, database_url)
    assert rebuilt.totals() == projected.totals()
    assert (report.items, report.changed_buckets) == (len(projected.shards), 2)
    assert_history_exact(
        database_url, deposits, START - timedelta(hours=1), START + timedelta(days=3)
    )
    updater.projector.run_pass()
    assert reconcile_differences(dynamodb, table_name, database_url) == []


def test_queries_answer_the_old_read_model_until_the_rebuild_commits(
    make_updater: MakeUpdater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    deposits = make_deposits(40, prefix="served")
    write_deposits(dynamodb, table_name, deposits)
    updater = make_updater(database_url)
    updater.projector.run_pass()
    put_read_model_ahead(
        updater.store,
        stream_arn(dynamodb, table_name),
        assert_exact(dynamodb, table_name, database_url),
    )
    # A statement timeout: a rebuild holding a lock that blocks readers fails the read.
    engine = create_database_engine(database_url, pool_size=1, statement_timeout_ms=5_000)
    reads = PostgresReadStore(engine)
    wallets = sorted({deposit.wallet_id for deposit in deposits} | {AWAY})
    end = START + timedelta(days=4)

    def balances() -> dict[str, Decimal]:
        return {wallet: reads.balance(wallet, end).balance for wallet in wallets}

    ahead = balances()
    during: list[dict[str, Decimal]] = []
    try:
        # Just before the rebuild commits, from another connection.
        make_updater(database_url, lambda: during.append(balances())).projector.rebuild(SEGMENTS)
        after = balances()
    finally:
        engine.dispose()

    assert during == [ahead]
    assert after == {
        wallet: exact_sum(d.amount for d in deposits if d.wallet_id == wallet) for wallet in wallets
    }
    assert after != ahead


# Long passes commit in chunks -----------------------------------------------------------

CHUNK = 100


def test_a_long_pass_commits_in_chunks_and_a_failure_resumes_from_the_last_chunk(
    dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    class Crash(Exception):
        pass

    write_deposits(dynamodb, table_name, make_deposits(150, prefix="backlog"))
    arn = stream_arn(dynamodb, table_name)
    sequence_numbers = ScriptedStreams(streams_client(), arn).sequence_numbers()
    assert len(sequence_numbers) == 300
    commits: list[int] = []

    def crash_at_the_second_commit() -> None:
        commits.append(len(commits) + 1)
        if len(commits) == 2:
            raise Crash

    reader = StreamReader(dynamodb_client(), streams_client(), table_name, chunk_records=CHUNK)
    engine = create_database_engine(database_url, pool_size=2)
    try:
        with pytest.raises(Crash):
            Projector(reader, ProjectionStore(engine), crash_at_the_second_commit).run_pass()
        failed = read_model(database_url)
        resumed = Projector(reader, ProjectionStore(engine)).run_pass()
    finally:
        engine.dispose()

    # The first chunk stayed committed with its checkpoint, the second rolled back.
    [checkpoint] = failed.checkpoints.values()
    assert checkpoint.sequence_number is not None
    assert int(checkpoint.sequence_number) == sequence_numbers[CHUNK - 1]
    assert not checkpoint.at_sequence_number
    assert 0 < total_records(failed) < 150
    assert_consistent(failed)
    assert failed.as_of is None, "as_of is stored only once every shard has been read"
    assert resumed.records_read == 300 - CHUNK
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 150
    assert reconcile_differences(dynamodb, table_name, database_url) == []


# as_of never claims more than was read ---------------------------------------------------


class InDelivery:
    """A DynamoDB Streams client on which the records after `delivered_through` have not
    arrived yet (DynamoDB Streams shows a write some time after acknowledging it)."""

    def __init__(self, delivered_through: int) -> None:
        self._streams = streams_client()
        self._delivered_through = delivered_through
        self.exceptions = self._streams.exceptions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._streams, name)

    def get_records(self, **request: Any) -> Any:
        page = self._streams.get_records(**request)
        delivered = [
            record
            for record in page["Records"]
            if int(record["dynamodb"]["SequenceNumber"]) <= self._delivered_through
        ]
        return {**page, "Records": delivered}


def test_as_of_never_claims_a_deposit_the_stream_had_not_delivered(
    dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="delivered"))
    arn = stream_arn(dynamodb, table_name)
    delivered_through = ScriptedStreams(streams_client(), arn).sequence_numbers()[-1]
    in_delivery = DynamoWriteStore(dynamodb, table_name, SHARD_COUNT).record(
        Deposit("wallet-0", "in-delivery", START + timedelta(hours=1), Decimal("1.00"))
    )
    assert isinstance(in_delivery, Recorded)
    streams = cast("DynamoDBStreamsClient", InDelivery(delivered_through))
    engine = create_database_engine(database_url, pool_size=2)
    try:
        reader = StreamReader(dynamodb_client(), streams, table_name)
        Projector(reader, ProjectionStore(engine)).run_pass()
    finally:
        engine.dispose()

    model = read_model(database_url)
    assert total_records(model) == 20
    assert model.as_of is not None
    assert model.as_of < in_delivery.record.recorded_at, (
        f"as_of {model.as_of.isoformat()} claims the deposit acknowledged at "
        f"{in_delivery.record.recorded_at.isoformat()}, which the pass never read"
    )


class Growing:
    """A DynamoDB Streams client on which a deposit is recorded before every GetRecords:
    every shard read ends by reading into records newer than its start."""

    def __init__(self, store: DynamoWriteStore) -> None:
        self._streams = streams_client()
        self._store = store
        self._count = 0
        self.exceptions = self._streams.exceptions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._streams, name)

    def get_records(self, **request: Any) -> Any:
        self._count += 1
        deposit = Deposit("wallet-growing", f"growing-{self._count}", START, Decimal("0.01"))
        assert isinstance(self._store.record(deposit), Recorded)
        return self._streams.get_records(**request)


def test_a_pass_that_read_into_newer_records_needs_no_delivery_allowance(
    dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="caught-up"))
    streams = cast(
        "DynamoDBStreamsClient", Growing(DynamoWriteStore(dynamodb, table_name, SHARD_COUNT))
    )
    engine = create_database_engine(database_url, pool_size=2)
    try:
        projector = Projector(
            StreamReader(dynamodb_client(), streams, table_name),
            ProjectionStore(engine),
            delivery_allowance=timedelta(hours=1),
        )
        before = datetime.now(UTC)
        projector.run_pass()
        after = datetime.now(UTC)
    finally:
        engine.dispose()

    as_of = read_model(database_url).as_of
    assert as_of is not None
    assert before <= as_of <= after


def test_a_rebuild_fills_the_records_of_a_read_model_migrated_before_they_were_projected(
    updater: Updater, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    deposits = make_deposits(30, prefix="premigration")
    write_deposits(dynamodb, table_name, deposits)
    updater.projector.run_pass()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DELETE FROM records")  # as migration 0003 leaves an older model
    assert len(reconcile_differences(dynamodb, table_name, database_url)) >= len(deposits)

    updater.projector.rebuild(SEGMENTS)

    assert reconcile_differences(dynamodb, table_name, database_url) == []
    assert len(assert_exact(dynamodb, table_name, database_url).records) == len(deposits)
