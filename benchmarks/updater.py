"""`wallet bench updater`: how long an updater pass takes after one late record in a wallet
with ten years of history, how fast a pass projects a large backlog of aggregate updates,
and how soon a record is visible through the query service with `wallet update --follow`.

It runs its own DynamoDB Local and a throwaway database. The passes of (1) and (2) run in
this process, wired as `wallet update` wires them, under the updater lock; (3) runs the
command service, the query service and `wallet update --follow` as child processes.
"""

import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import psycopg
from sqlalchemy import Engine

from benchmarks.auth import NOTE as AUTH_NOTE
from benchmarks.auth import BenchAuth, new_bench_auth
from benchmarks.figures import Target, markdown_table, milliseconds, percentile, targets_table
from benchmarks.history_seed import SeededWallet, Seeding, seed_read_model, seeding_table
from benchmarks.processes import child_env
from benchmarks.sigterm import interrupted_by_sigterm
from harness.processes import wallet_process
from harness.scratch_database import scratch_database
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.ledger_table import ensure_table, record_transaction_items
from services.ledger.adapters.write_store import (
    DynamoWriteStore,
    dynamodb_client,
)
from services.ledger.domain.aggregates import AggregateImage
from services.ledger.domain.buckets import BUCKET
from services.ledger.domain.records import Deposit
from services.platform.proto_time import datetime_to_timestamp
from services.platform.settings import CommandSettings, TableSettings, UpdaterSettings
from services.updater.positions import ShardPosition
from services.updater.projection_store import ProjectionStore
from services.updater.projector import PassReport, Projector
from services.updater.stream_reader import StreamBatch, StreamReader, streams_client
from wallet.v1 import command_pb2, command_pb2_grpc, query_pb2, query_pb2_grpc
from wallet_cli.local.dynamodb_local import DynamoDBLocal, free_port

HISTORY_WALLET = "ten-years"
FRESH_WALLET = "fresh"
LATE_RECORD_AGE = timedelta(days=5 * 365)
BULK_WALLETS = 1000
UPDATES_PER_CALL = 25
PASS_LIMIT_SECONDS = 1.0
FRESHNESS_P95_LIMIT_SECONDS = 2.0
POLL_SECONDS = 0.02
VISIBLE_WITHIN_SECONDS = 30.0

_WALLET_SUMS = """
SELECT
  (SELECT coalesce(sum(amount), 0) FROM shard_aggregates WHERE wallet_id = %(wallet)s),
  coalesce((SELECT balance_after FROM day_totals WHERE wallet_id = %(wallet)s
            ORDER BY day DESC LIMIT 1), 0)
"""

_BULK_TOTALS = """
SELECT count(*), coalesce(sum(amount), 0) FROM shard_aggregates WHERE wallet_id LIKE 'bulk-%'
"""


class _BenchSettings(CommandSettings, UpdaterSettings):
    """The command service's writes and the updater's passes, on one table."""


@dataclass
class Split:
    """Seconds a pass spent reading the stream and in its PostgreSQL transaction."""

    read: float = 0.0
    apply: float = 0.0


class _TimedReader(StreamReader):
    def __init__(self, table_name: str, split: Split) -> None:
        super().__init__(dynamodb_client(), streams_client(), table_name)
        self._split = split

    def read(self, stream_arn: str, plan: list[ShardPosition]) -> StreamBatch:
        started = time.perf_counter()
        try:
            return super().read(stream_arn, plan)
        finally:
            self._split.read += time.perf_counter() - started


class _TimedStore(ProjectionStore):
    def __init__(self, engine: Engine, split: Split) -> None:
        super().__init__(engine)
        self._split = split

    def apply(self, images: Iterable[AggregateImage], **options: Any) -> int:
        started = time.perf_counter()
        try:
            return super().apply(images, **options)
        finally:
            self._split.apply += time.perf_counter() - started


@dataclass(frozen=True)
class TimedPass:
    report: PassReport
    seconds: float
    read: float
    apply: float

    def row(self, label: object) -> list[object]:
        return [
            label,
            f"{self.report.records_read:,}",
            f"{self.report.items:,}",
            f"{self.report.changed_buckets:,}",
            milliseconds(self.read),
            milliseconds(self.apply),
            milliseconds(self.seconds),
        ]


PASS_HEADERS = [
    "pass",
    "stream records",
    "aggregate items",
    "changed buckets",
    "stream read ms",
    "PostgreSQL ms",
    "total ms",
]


def _timed_pass(projector: Projector, split: Split) -> TimedPass:
    split.read = split.apply = 0.0
    started = time.perf_counter()
    report = projector.run_pass()
    return TimedPass(report, time.perf_counter() - started, split.read, split.apply)


def _wallet_sums(database_url: str, wallet: str) -> tuple[Decimal, Decimal]:
    """The wallet's SUM over shard_aggregates and its last day_totals running balance."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute(_WALLET_SUMS, {"wallet": wallet}).fetchone()
    assert row is not None
    return row[0], row[1]


def _late_record_passes(
    projector: Projector,
    split: Split,
    write_store: DynamoWriteStore,
    now: datetime,
    passes: int,
) -> list[TimedPass]:
    """Each pass follows two deposits into the history wallet: one five years back (so
    five years of running day balances after it change) and one in the current hour."""
    timed = []
    for index in range(passes):
        for occurred_at in (now - LATE_RECORD_AGE - index * timedelta(days=1), now):
            write_store.record(
                Deposit(HISTORY_WALLET, f"late-{uuid.uuid4()}", occurred_at, Decimal("1.25"))
            )
        timed.append(_timed_pass(projector, split))
    return timed


def _bulk_deposit(index: int, now: datetime) -> Deposit:
    """Update `index` of the throughput pass: each one its own (wallet, bucket) in the last
    day or so of BULK_WALLETS wallets."""
    wallet = f"bulk-{index % BULK_WALLETS}"
    occurred_at = now - (index // BULK_WALLETS) * BUCKET
    amount = Decimal(index % 100 + 1).scaleb(-2)
    return Deposit(wallet, f"bulk-{index}", occurred_at, amount)


def _generate_updates(
    settings: CommandSettings, updates: int, threads: int, now: datetime
) -> float:
    """Applies `updates` aggregate updates, each the write store's own aggregate Update (key
    layout and ADD expression) without its record item, and each giving one stream record;
    returns the seconds it took. They go UPDATES_PER_CALL to a TransactWriteItems call:
    one UpdateItem call per update costs DynamoDB Local several times the CPU per update."""
    client = dynamodb_client(max_pool_connections=threads)
    calls = range(0, updates, UPDATES_PER_CALL)

    def apply_share(first_call: int) -> None:
        for start in calls[first_call::threads]:
            actions: list[Any] = []
            for index in range(start, min(start + UPDATES_PER_CALL, updates)):
                deposit = _bulk_deposit(index, now)
                shard = deposit.shard(settings.aggregate_shards)
                actions.append(
                    record_transaction_items(settings.table_name, deposit, shard, now)[1]
                )
            client.transact_write_items(TransactItems=actions)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(apply_share, first) for first in range(threads)]:
            future.result()
    return time.perf_counter() - started


def _bulk_expected(updates: int, now: datetime) -> tuple[int, Decimal]:
    deposits = [_bulk_deposit(index, now) for index in range(updates)]
    return len(deposits), sum((d.amount for d in deposits), Decimal(0))


def _bulk_projected(database_url: str) -> tuple[int, Decimal]:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(_BULK_TOTALS).fetchone()
    assert row is not None
    return row[0], row[1]


def _balance(stub: query_pb2_grpc.WalletQueryStub, auth: BenchAuth, wallet: str) -> Decimal:
    response = stub.GetBalance(
        query_pb2.GetBalanceRequest(wallet_id=wallet), timeout=10, metadata=auth.metadata
    )
    return Decimal(response.balance)


def _seconds_until_visible(
    command: command_pb2_grpc.WalletCommandStub,
    query: query_pb2_grpc.WalletQueryStub,
    auth: BenchAuth,
    expected: Decimal,
    updater: "subprocess.Popen[bytes]",
) -> float:
    """Records one deposit of 1 and polls GetBalance until the balance reaches `expected`;
    the seconds from the acknowledgement to the first answer that shows it."""
    command.RecordTransaction(
        command_pb2.RecordTransactionRequest(
            wallet_id=FRESH_WALLET,
            request_id=f"fresh-{uuid.uuid4()}",
            occurred_at=datetime_to_timestamp(datetime.now(UTC)),
            amount="1",
        ),
        timeout=10,
        metadata=auth.metadata,
    )
    acknowledged = time.perf_counter()
    while _balance(query, auth, FRESH_WALLET) < expected:
        if updater.poll() is not None:
            raise RuntimeError("wallet update --follow exited during the benchmark")
        if time.perf_counter() - acknowledged > VISIBLE_WITHIN_SECONDS:
            raise RuntimeError(f"a record was not visible after {VISIBLE_WITHIN_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)
    return time.perf_counter() - acknowledged


@contextmanager
def _follow_stack(
    settings: TableSettings, database_url: str, logs: Path, auth: BenchAuth
) -> Iterator[
    tuple[
        command_pb2_grpc.WalletCommandStub,
        query_pb2_grpc.WalletQueryStub,
        "subprocess.Popen[bytes]",
    ]
]:
    """The command and query services and `wallet update --follow` as child processes,
    with stubs for the services; all stopped when the block ends."""
    command_port, query_port = free_port(), free_port()
    env = child_env(
        {
            **auth.env(),
            "DATABASE_URL": database_url,
            "WALLET_TABLE_NAME": settings.table_name,
            "WALLET_LISTEN_HOST": "127.0.0.1",
            "WALLET_COMMAND_PORT": str(command_port),
            "WALLET_QUERY_PORT": str(query_port),
        }
    )
    with (
        wallet_process(["serve", "command"], env, logs / "command.log", grpc_port=command_port),
        wallet_process(["serve", "query"], env, logs / "query.log", grpc_port=query_port),
        wallet_process(["update", "--follow"], env, logs / "updater.log") as updater,
        grpc.insecure_channel(f"127.0.0.1:{command_port}") as command_channel,
        grpc.insecure_channel(f"127.0.0.1:{query_port}") as query_channel,
    ):
        yield (
            command_pb2_grpc.WalletCommandStub(command_channel),
            query_pb2_grpc.WalletQueryStub(query_channel),
            updater,
        )


def _freshness(
    settings: _BenchSettings, database_url: str, logs: Path, samples: int
) -> list[float]:
    """Seconds from acknowledged write to visible balance, `samples` times after one
    warm-up. A random pause before each write spreads the writes over the updater's
    polling cycle instead of always starting just after a pass."""
    pauses, auth = random.Random(0), new_bench_auth()
    with _follow_stack(settings, database_url, logs, auth) as (command, query, updater):
        latencies = []
        for index in range(samples + 1):
            time.sleep(pauses.uniform(0, settings.updater_interval_seconds))
            latency = _seconds_until_visible(command, query, auth, Decimal(index + 1), updater)
            if index:
                latencies.append(latency)
    return latencies


def _print_setup(dynamodb: DynamoDBLocal, settings: CommandSettings, seeding: Seeding) -> None:
    print("## wallet bench updater\n")
    print(
        f"DynamoDB Local {dynamodb.endpoint_url}, table {settings.table_name} "
        f"({settings.aggregate_shards} aggregate shards). Read model seeded in "
        f"{seeding.seconds:.1f} s directly in PostgreSQL (shard {settings.aggregate_shards}, "
        "which the write store never uses, so new deposits add rows beside the history "
        f"instead of losing to its counts); {seeding.balances_checked} balances checked.\n"
    )
    print(seeding_table(seeding) + "\n")


def _print_late_passes(timed: list[TimedPass], consistent: bool) -> None:
    print(
        f"### (1) One pass after a late record ({LATE_RECORD_AGE.days} days back) and one in "
        "the current hour, in the ten-year wallet\n"
    )
    print(markdown_table(PASS_HEADERS, [t.row(n) for n, t in enumerate(timed, 1)]) + "\n")
    median = statistics.median(t.seconds for t in timed)
    print(
        f"Median pass: {milliseconds(median)} ms. After the passes the wallet's last running "
        f"day balance equals the SUM over its shard rows: {'yes' if consistent else 'NO'}.\n"
    )


def _print_throughput(
    updates: int, threads: int, generation: float, timed: TimedPass, projected_ok: bool
) -> None:
    print(f"### (2) One pass over {updates:,} aggregate updates\n")
    print(
        f"Generated as aggregate updates only (the write store's own key layout and ADD "
        f"expression, no record items; {UPDATES_PER_CALL} per TransactWriteItems call) from "
        f"{threads} threads: {generation:.1f} s, {updates / generation:,.0f} updates/s. Each "
        f"update is its own (wallet, bucket) item over {BULK_WALLETS:,} wallets and gives one "
        "stream record.\n"
    )
    print(markdown_table(PASS_HEADERS, [timed.row("backlog")]) + "\n")
    print(
        f"Throughput: {timed.report.records_read / timed.seconds:,.0f} stream records/s "
        f"(stream read {timed.read / timed.seconds:.0%} of the pass, PostgreSQL "
        f"{timed.apply / timed.seconds:.0%}). Projected rows and sum equal the generated "
        f"ones: {'yes' if projected_ok else 'NO'}.\n"
    )


def _print_freshness(latencies: list[float], interval: float) -> None:
    print("### (3) Freshness with `wallet update --follow`\n")
    print(
        f"RecordTransaction acknowledged -> GetBalance shows it (polled every "
        f"{POLL_SECONDS * 1000:.0f} ms); updater interval {interval:g} s; command, query and "
        f"updater as child processes. {AUTH_NOTE}\n"
    )
    print(
        markdown_table(
            ["samples", "p50 ms", "p95 ms", "max ms"],
            [
                [
                    len(latencies),
                    milliseconds(percentile(latencies, 50)),
                    milliseconds(percentile(latencies, 95)),
                    milliseconds(max(latencies)),
                ]
            ],
        )
        + "\n"
    )


@dataclass(frozen=True)
class InProcessPasses:
    late: list[TimedPass]
    late_consistent: bool
    generation_seconds: float
    backlog: TimedPass
    backlog_consistent: bool


def _in_process_passes(
    settings: CommandSettings,
    database_url: str,
    now: datetime,
    passes: int,
    updates: int,
    threads: int,
) -> InProcessPasses:
    """(1) and (2): passes wired as `wallet update` wires them, under the updater lock, with
    the stream reading and the PostgreSQL transaction timed apart."""
    split = Split()
    # The pool size `wallet update` uses.
    engine = create_database_engine(database_url, pool_size=2)
    store = _TimedStore(engine, split)
    projector = Projector(_TimedReader(settings.table_name, split), store)
    write_store = DynamoWriteStore(
        dynamodb_client(), settings.table_name, settings.aggregate_shards
    )
    try:
        with store.exclusive() as locked:
            if not locked:
                raise RuntimeError("another updater holds the lock on the throwaway database")
            projector.run_pass()  # makes the checkpoint current: later passes read only news
            late = _late_record_passes(projector, split, write_store, now, passes)
            projected, running = _wallet_sums(database_url, HISTORY_WALLET)
            generation = _generate_updates(settings, updates, threads, now)
            backlog = _timed_pass(projector, split)
    finally:
        engine.dispose()
    return InProcessPasses(
        late,
        projected == running,
        generation,
        backlog,
        _bulk_projected(database_url) == _bulk_expected(updates, now),
    )


def run_updater_benchmark(
    passes: int = 5, updates: int = 100_000, samples: int = 60, threads: int = 8
) -> int:
    settings = _BenchSettings(table_name=f"bench-updater-{uuid.uuid4().hex[:8]}")
    now = datetime.now(UTC)
    with interrupted_by_sigterm(), ExitStack() as stack:
        dynamodb = stack.enter_context(DynamoDBLocal())
        # boto3 in this process and in the child processes talks to this DynamoDB Local.
        os.environ.update(dynamodb.client_env())
        ensure_table(dynamodb_client(), settings.table_name)
        database_url = stack.enter_context(scratch_database("wallet_bench_updater"))
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wallet-bench-")))
        history = SeededWallet(
            HISTORY_WALLET,
            days=3650,
            end=now.replace(minute=0, second=0, microsecond=0),
            first_shard=settings.aggregate_shards,
        )
        seeding = seed_read_model(database_url, [history])
        _print_setup(dynamodb, settings, seeding)

        in_process = _in_process_passes(settings, database_url, now, passes, updates, threads)
        _print_late_passes(in_process.late, in_process.late_consistent)
        _print_throughput(
            updates,
            threads,
            in_process.generation_seconds,
            in_process.backlog,
            in_process.backlog_consistent,
        )

        latencies = _freshness(settings, database_url, logs, samples)
        _print_freshness(latencies, settings.updater_interval_seconds)
        print(
            targets_table(
                [
                    Target(
                        "median pass after one late record, ten-year history",
                        statistics.median(t.seconds for t in in_process.late),
                        PASS_LIMIT_SECONDS,
                        " s",
                    ),
                    Target(
                        "freshness p95 with --follow",
                        percentile(latencies, 95),
                        FRESHNESS_P95_LIMIT_SECONDS,
                        " s",
                    ),
                ]
            )
        )
    return 0
