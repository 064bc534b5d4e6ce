"""`wallet update` as real processes on DynamoDB Local and PostgreSQL: a crash between
writing rows and committing loses and double counts nothing, two updaters at once leave an
exact read model, `--rebuild` equals a stream-built read model and corrects one that is
ahead of the table (`wallet reconcile` then agrees), a lost checkpoint exits 3 naming the
fix, `--follow` keeps the read model fresh and stops cleanly on SIGTERM, and a run logs
the one JSON line the alarms count (with the read model's age) only when its pass
committed."""

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mypy_boto3_dynamodb.client import DynamoDBClient

from harness.processes import tail, wallet_command
from harness.waiting import wait_until
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.write_store import dynamodb_client
from services.ledger.domain.aggregates import AggregateImage
from services.platform.settings import PROJECT_ROOT
from services.updater.main import (
    EXIT_CHECKPOINT_LOST,
    PASS_COMPLETED_MESSAGE,
    READ_MODEL_AGE_FIELD,
)
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.stream_reader import StreamReader, streams_client
from tests.e2e.processes import Finished, child_env
from tests.updater_support import (
    ReadModel,
    assert_exact,
    make_deposits,
    read_model,
    stream_arn,
    total_records,
    write_deposits,
)
from wallet_cli.local.dynamodb_local import DynamoDBLocal

# Bounds for waits on a loaded machine, not expectations of speed.
RUN_TIMEOUT = 120.0
FRESH_TIMEOUT = 60.0
ANOTHER_UPDATER = "another updater is running"
GONE_SHARD = "shardId-00000001700000000000-0123abcd"


@dataclass(frozen=True)
class Started:
    process: "subprocess.Popen[bytes]"
    stdout_path: Path
    stderr_path: Path

    def wait(self, timeout: float = RUN_TIMEOUT) -> Finished:
        self.process.wait(timeout)
        return Finished(
            self.process.returncode,
            self.stdout_path.read_text(errors="replace"),
            self.stderr_path.read_text(errors="replace"),
        )


class Updaters:
    """Starts `wallet update` processes for one table; every one is killed at teardown if
    still running."""

    def __init__(self, dynamodb: DynamoDBLocal, table_name: str, log_dir: Path) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name
        self._log_dir = log_dir
        self._started: list[Started] = []

    def start(
        self, database_url: str, *args: str, crash_before_commit: bool = False, **env: str
    ) -> Started:
        """`wallet update *args`; with `crash_before_commit`, one that SIGKILLs itself
        before its first commit (tests/e2e/crash_before_commit.py)."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"update-{len(self._started)}"
        stdout_path = self._log_dir / f"{stamp}.stdout"
        stderr_path = self._log_dir / f"{stamp}.stderr"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                (_crashing_wallet_command if crash_before_commit else wallet_command)(
                    "update", *args
                ),
                env=child_env(
                    **self._dynamodb.client_env(),
                    WALLET_TABLE_NAME=self._table_name,
                    DATABASE_URL=database_url,
                    **env,
                ),
                stdout=stdout,
                stderr=stderr,
            )
        started = Started(process, stdout_path, stderr_path)
        self._started.append(started)
        return started

    def run(
        self, database_url: str, *args: str, crash_before_commit: bool = False, **env: str
    ) -> Finished:
        """Runs one `wallet update` to its end (first waiting until no updater holds the
        database's lock, so a killed predecessor cannot make it skip its pass)."""
        wait_until_unlocked(database_url)
        started = self.start(database_url, *args, crash_before_commit=crash_before_commit, **env)
        return started.wait()

    def reconcile(self, database_url: str) -> Finished:
        """`wallet reconcile --records` on the same table and database, to its end."""
        result = subprocess.run(
            wallet_command("reconcile", "--records"),
            env=child_env(
                **self._dynamodb.client_env(),
                WALLET_TABLE_NAME=self._table_name,
                DATABASE_URL=database_url,
            ),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return Finished(result.returncode, result.stdout, result.stderr)

    def stop_all(self) -> None:
        for started in self._started:
            if started.process.poll() is None:
                started.process.kill()
                started.process.wait()


def _crashing_wallet_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.e2e.crash_before_commit", *args]


@pytest.fixture
def updaters(dynamodb_local: DynamoDBLocal, table_name: str, tmp_path: Path) -> Iterator[Updaters]:
    updaters = Updaters(dynamodb_local, table_name, tmp_path / "logs")
    try:
        yield updaters
    finally:
        updaters.stop_all()


def advisory_locks(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    assert row is not None
    count: int = row[0]
    return count


def wait_until_unlocked(database_url: str) -> None:
    """A SIGKILLed updater's lock goes when PostgreSQL notices its connection closed."""
    wait_until(
        lambda: advisory_locks(database_url) == 0,
        lambda: "the updater lock of a finished updater was not released",
        FRESH_TIMEOUT,
    )


def is_exact(dynamodb: DynamoDBClient, table_name: str, database_url: str, records: int) -> bool:
    try:
        return total_records(assert_exact(dynamodb, table_name, database_url)) == records
    except AssertionError:
        return False


def assert_killed_before_commit(finished: Finished) -> None:
    assert finished.returncode == -signal.SIGKILL, finished.describe()


def assert_ok(finished: Finished) -> None:
    assert finished.returncode == 0, finished.describe()
    assert ANOTHER_UPDATER not in finished.stderr, finished.describe()


def pass_lines(finished: Finished) -> list[dict[str, Any]]:
    """The JSON lines on stderr that terraform/alarms.tf counts as completed passes."""
    lines = []
    for line in finished.stderr.splitlines():
        try:
            logged = json.loads(line)
        except json.JSONDecodeError:
            continue  # a traceback, or a plain message
        if isinstance(logged, dict) and logged.get("message") == PASS_COMPLETED_MESSAGE:
            lines.append(logged)
    return lines


def test_a_pass_logs_one_json_line_with_the_age_of_the_as_of_it_stored(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(30, prefix="age"))

    finished = updaters.run(database_url)

    assert_ok(finished)
    [line] = pass_lines(finished)
    as_of = read_model(database_url).as_of
    assert as_of is not None
    age = line[READ_MODEL_AGE_FIELD]
    assert isinstance(age, float | int), finished.describe()
    # now - as_of, at the instant the line was logged.
    logged_at = datetime.fromisoformat(line["timestamp"])
    assert age == pytest.approx((logged_at - as_of).total_seconds(), abs=0.5)
    assert 0 <= age < RUN_TIMEOUT
    assert line["records_read"] > 0


def test_a_crash_before_commit_writes_nothing_and_the_next_pass_is_exact(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(150, prefix="before-first-pass"))

    assert_killed_before_commit(updaters.run(database_url, crash_before_commit=True))
    assert read_model(database_url).is_empty()
    write_deposits(dynamodb, table_name, make_deposits(100, prefix="between-crashes"))
    assert_killed_before_commit(updaters.run(database_url, crash_before_commit=True))
    assert read_model(database_url).is_empty()

    assert_ok(updaters.run(database_url))
    first = assert_exact(dynamodb, table_name, database_url)
    assert total_records(first) == 250

    # Mid-stream: checkpoints exist; a crash leaves rows, checkpoints and as_of as they were.
    write_deposits(dynamodb, table_name, make_deposits(50, prefix="before-crash"))
    assert_killed_before_commit(updaters.run(database_url, crash_before_commit=True))
    assert read_model(database_url) == first
    write_deposits(dynamodb, table_name, make_deposits(50, prefix="after-crash"))

    assert_ok(updaters.run(database_url))
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 350


def test_two_updaters_started_together_leave_an_exact_read_model(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(80, prefix="together"))

    started = [updaters.start(database_url), updaters.start(database_url)]
    finished = [each.wait() for each in started]

    for each in finished:
        assert each.returncode == 0, each.describe()
    assert any(ANOTHER_UPDATER not in each.stderr for each in finished)
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 80


def test_an_updater_finding_the_lock_taken_exits_cleanly_and_writes_nothing(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="locked-out"))
    engine = create_database_engine(database_url, pool_size=1)
    try:
        with ProjectionStore(engine).exclusive() as locked:
            assert locked
            finished = updaters.start(database_url).wait()
    finally:
        engine.dispose()

    assert finished.returncode == 0, finished.describe()
    assert ANOTHER_UPDATER in finished.stderr, finished.describe()
    assert read_model(database_url).is_empty()
    # No pass of its own: an updater hung while holding the lock must still raise the alarm.
    assert pass_lines(finished) == [], finished.describe()


def test_a_rebuild_finding_the_lock_taken_fails_saying_nothing_was_rebuilt(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    """An operator told to rebuild (exit 3) must not read exit 0 as a rebuild done."""
    write_deposits(dynamodb, table_name, make_deposits(20, prefix="rebuild-locked-out"))
    engine = create_database_engine(database_url, pool_size=1)
    try:
        with ProjectionStore(engine).exclusive() as locked:
            assert locked
            finished = updaters.start(database_url, "--rebuild").wait()
    finally:
        engine.dispose()

    assert finished.returncode == 4, finished.describe()
    assert "nothing was rebuilt" in finished.stderr, finished.describe()
    assert read_model(database_url).is_empty()


def test_rebuild_into_an_empty_database_equals_the_stream_built_read_model(
    updaters: Updaters,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
    another_database_url: str,
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(100, prefix="rebuild"))
    # The stream-built reference, in this process (the other tests run it as `wallet update`).
    engine = create_database_engine(database_url, pool_size=2)
    try:
        reader = StreamReader(dynamodb_client(), streams_client(), table_name)
        Projector(reader, ProjectionStore(engine)).run_pass()
    finally:
        engine.dispose()
    assert read_model(another_database_url).is_empty()

    assert_ok(updaters.run(another_database_url, "--rebuild"))

    from_stream = assert_exact(dynamodb, table_name, database_url)
    from_scan = assert_exact(dynamodb, table_name, another_database_url)
    assert from_scan.totals() == from_stream.totals()
    assert total_records(from_scan) == 100


def test_rebuild_corrects_a_read_model_ahead_of_the_table_so_reconcile_agrees(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(50, prefix="restore"))
    assert_ok(updaters.run(database_url))
    (wallet, bucket, shard), (amount, count) = min(
        assert_exact(dynamodb, table_name, database_url).shards.items()
    )
    # The table restored to a point in time before some deposits the read model has.
    engine = create_database_engine(database_url, pool_size=1)
    try:
        ProjectionStore(engine).apply(
            [
                AggregateImage(wallet, bucket, shard, amount + 100, count + 3),
                AggregateImage("restored-away", bucket, 0, Decimal("2.5"), 1),
            ],
            stream_arn=stream_arn(dynamodb, table_name),
            positions=[],
        )
    finally:
        engine.dispose()
    differing = updaters.reconcile(database_url)
    assert differing.returncode == 1, differing.describe()
    assert "restored-away" in differing.stdout, differing.describe()

    assert_ok(updaters.run(database_url, "--rebuild"))

    agreeing = updaters.reconcile(database_url)
    assert agreeing.returncode == 0, agreeing.describe()
    assert "no difference" in agreeing.stdout, agreeing.describe()
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 50


def test_a_lost_checkpoint_exits_3_naming_rebuild_which_recovers(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(50, prefix="lost"))
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "INSERT INTO stream_checkpoints (stream_arn, shard_id, sequence_number, finished)"
            " VALUES (%s, %s, '4242', false)",
            (stream_arn(dynamodb, table_name), GONE_SHARD),
        )
    before: ReadModel = read_model(database_url)

    lost = updaters.run(database_url)

    assert lost.returncode == EXIT_CHECKPOINT_LOST == 3, lost.describe()
    assert "--rebuild" in lost.stderr, lost.describe()
    assert pass_lines(lost) == [], lost.describe()
    assert read_model(database_url) == before
    assert before.as_of is None

    assert_ok(updaters.run(database_url, "--rebuild"))
    write_deposits(dynamodb, table_name, make_deposits(10, prefix="after-rebuild"))
    assert_ok(updaters.run(database_url))
    model = assert_exact(dynamodb, table_name, database_url)
    assert total_records(model) == 60
    assert GONE_SHARD not in {shard for _, shard in model.checkpoints}


def test_follow_keeps_the_read_model_fresh_and_stops_on_sigterm(
    updaters: Updaters, dynamodb: DynamoDBClient, table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(40, prefix="follow-before"))
    follower = updaters.start(database_url, "--follow", WALLET_UPDATER_INTERVAL_SECONDS="0.2")

    def exited() -> bool:
        return follower.process.poll() is not None

    def state() -> str:
        status = f"exited {follower.process.returncode}" if exited() else "running"
        return f"--follow {status}; stderr:\n{tail(follower.stderr_path)}"

    def projected(records: int) -> None:
        wait_until(
            lambda: exited() or is_exact(dynamodb, table_name, database_url, records),
            state,
            FRESH_TIMEOUT,
        )
        assert not exited(), state()

    projected(40)
    first = read_model(database_url).as_of
    write_deposits(dynamodb, table_name, make_deposits(1, prefix="follow-while-running"))
    projected(41)
    later = read_model(database_url).as_of
    assert first is not None
    assert later is not None
    assert later > first

    follower.process.send_signal(signal.SIGTERM)
    finished = follower.wait(timeout=30)

    assert finished.returncode == 0, finished.describe()
