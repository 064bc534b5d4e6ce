"""`wallet bench write`: what the gRPC command service costs over a bare DynamoDB
transaction, and how the seed's write scheme fares against ours under contention.

(a) a bare boto3 loop runs the command service's exact two-item transaction;
(b) RecordTransaction over gRPC, to `wallet serve command` running as a child process;
both at 1 and at 32 concurrent clients. (c) the seed's scheme and ours, with 16 writers
into one hour (see benchmarks/contention.py).

Each path of each phase writes to its own new, in-memory DynamoDB Local, not just to its
own table: DynamoDB Local slows down writes to every stream-enabled table but the first one
that holds data (measured here: about 150 against 10 transactions/s once a few thousand
records are in), so a second table would measure the emulator rather than the path.

Figures go to stdout as markdown; progress goes to stderr.
"""

import math
import os
import random
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc

from benchmarks.auth import NOTE as AUTH_NOTE
from benchmarks.auth import new_bench_auth
from benchmarks.contention import (
    ContentionResult,
    OurScheme,
    SeedScheme,
    measure_contention,
)
from benchmarks.figures import markdown_table, milliseconds, percentile
from benchmarks.load import LoadRun, combined, run_concurrently
from benchmarks.memory import PeakRss
from benchmarks.processes import child_env
from benchmarks.sigterm import interrupted_by_sigterm
from harness.processes import wallet_process
from services.ledger.adapters.ledger_table import ensure_table, record_transaction_items
from services.ledger.adapters.write_store import (
    DynamoWriteStore,
    dynamodb_client,
)
from services.ledger.domain.money import format_amount
from services.ledger.domain.records import Deposit
from services.platform.proto_time import datetime_to_timestamp
from services.platform.settings import CommandSettings
from wallet.v1 import command_pb2, command_pb2_grpc
from wallet_cli.local.dynamodb_local import DynamoDBLocal, DynamoDBLocalError, find_jar, free_port

DEFAULT_RECORDS = 2000
WARMUP_CALLS = 500
ROUNDS = 8
CLIENT_COUNTS = (1, 32)
CONTENTION_WRITERS = 16
RESEND_SHARE = 0.05
WALLETS = ("wallet-1", "wallet-2", "wallet-3", "wallet-4")
RECENT_HOURS = timedelta(hours=6)
CALL_TIMEOUT_SECONDS = 30.0
LEDGER_TABLE = "bench-write-ledger"
SEED_TABLE = "bench-write-seed"

TARGET_CLIENTS = 32
TARGET_RATIO = 0.8
TARGET_RSS_MB = 200.0

BARE = "(a) boto3 TransactWriteItems"
GRPC = "(b) gRPC RecordTransaction"


@dataclass(frozen=True)
class PathResult:
    path: str
    clients: int
    run: LoadRun[Deposit, None]
    peak_rss_bytes: int | None = None
    """The command service's, for the gRPC path."""


def run_write_benchmark(records: int = DEFAULT_RECORDS) -> int:
    """Measures (a), (b) and (c) and prints them as markdown; 0 once it ran, whatever it
    found. `records`: measured calls per path and client count; each scheme of (c) gets
    half as many."""
    rng = random.Random(0)
    load_at_start = os.getloadavg()[0]
    try:
        with interrupted_by_sigterm():
            paths = [
                result for clients in CLIENT_COUNTS for result in _paths(clients, records, rng)
            ]
            contention = _contention(max(records // 2, 1), rng)
    except DynamoDBLocalError as error:
        print(f"wallet bench write: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "wallet bench write: interrupted; every process it started is stopped", file=sys.stderr
        )
        return 130
    print(_report(paths, contention, records, (load_at_start, os.getloadavg()[0])))
    return 0


def _progress(message: str) -> None:
    print(f"wallet bench write: {message}", file=sys.stderr, flush=True)


@contextmanager
def _fresh_dynamodb() -> Iterator[DynamoDBLocal]:
    """A new, in-memory DynamoDB Local; boto3 clients created in this process (and the
    children it starts) inside the block talk to it."""
    dynamodb = DynamoDBLocal()
    # Not `with DynamoDBLocal()`: an interrupt while it starts must stop it too.
    try:
        dynamodb.start()
        os.environ.update(dynamodb.client_env())
        yield dynamodb
    finally:
        dynamodb.stop()


def _new_ledger_table() -> str:
    ensure_table(dynamodb_client(), LEDGER_TABLE)
    return LEDGER_TABLE


def _deposits(
    label: str,
    count: int,
    wallets: Sequence[str],
    start: datetime,
    span: timedelta,
    rng: random.Random,
) -> list[Deposit]:
    """`count` deposits with distinct request ids, on `wallets`, at random instants in
    [start, start + span), of 0.01 to 100.00."""
    return [
        Deposit(
            wallet_id=rng.choice(wallets),
            request_id=f"bench-{label}-{index}",
            occurred_at=start + span * rng.random(),
            amount=Decimal(rng.randint(1, 10_000)).scaleb(-2),
        )
        for index in range(count)
    ]


def _recent_deposits(label: str, count: int, rng: random.Random) -> list[Deposit]:
    """Deposits on a few wallets over the last hours, as a busy ledger receives them."""
    start = datetime.now(UTC) - RECENT_HOURS
    return _deposits(label, count, WALLETS, start, RECENT_HOURS, rng)


def _paths(clients: int, records: int, rng: random.Random) -> list[PathResult]:
    """(a) and (b) at `clients`, after a warm-up of each (the emulator's JIT needs a few
    hundred calls). The measured calls go in rounds, a b b a a b ..., with the same
    deposits for both, so that what else runs on the machine hits both paths alike."""
    _progress(f"(a) and (b), clients: {clients}")
    with _bare_boto3_path() as bare, _grpc_path() as (grpc_send, memory):
        senders = [(BARE, bare), (GRPC, grpc_send)]
        warmup = _recent_deposits("warmup", min(records, WARMUP_CALLS), rng)
        for _, send in senders:
            run_concurrently(send, warmup, clients)
        measured = _recent_deposits("measured", records, rng)
        runs: dict[str, list[LoadRun[Deposit, None]]] = {path: [] for path, _ in senders}
        for round_ in range(ROUNDS):
            for path, send in senders if round_ % 2 == 0 else senders[::-1]:
                runs[path].append(run_concurrently(send, measured[round_::ROUNDS], clients))
    return [
        PathResult(BARE, clients, combined(runs[BARE])),
        PathResult(GRPC, clients, combined(runs[GRPC]), memory.peak_bytes),
    ]


@contextmanager
def _bare_boto3_path() -> Iterator[Callable[[Deposit], None]]:
    """Sends the command service's exact transaction to a fresh DynamoDB Local."""
    shards = CommandSettings().aggregate_shards
    with _fresh_dynamodb():
        table = _new_ledger_table()
        # One client shared by all threads, built as the command service builds its own
        # (same retries, timeouts and a connection per thread): b - a is then the cost of
        # the gRPC hop and the service, not of a differently configured SDK. It keeps
        # talking to this DynamoDB Local when the next one changes the environment.
        client = dynamodb_client()

        def send(deposit: Deposit) -> None:
            items = record_transaction_items(
                table, deposit, deposit.shard(shards), datetime.now(UTC)
            )
            client.transact_write_items(
                TransactItems=items,  # type: ignore[arg-type]
                ClientRequestToken=str(uuid.uuid4()),
            )

        yield send


@contextmanager
def _grpc_path() -> Iterator[tuple[Callable[[Deposit], None], PeakRss]]:
    """Calls RecordTransaction on `wallet serve command`, a child process writing to a fresh
    DynamoDB Local, once its health check says SERVING; with the sampler of its memory."""
    auth = new_bench_auth()
    with _fresh_dynamodb() as dynamodb:
        port = free_port()
        env = child_env(
            {
                **dynamodb.client_env(),
                **auth.env(),
                "WALLET_TABLE_NAME": _new_ledger_table(),
                "WALLET_LISTEN_HOST": "127.0.0.1",
                "WALLET_COMMAND_PORT": str(port),
            }
        )
        with (
            tempfile.TemporaryDirectory(prefix="wallet-bench-") as logs,
            wallet_process(
                ["serve", "command"], env, Path(logs) / "command.log", grpc_port=port
            ) as service,
            PeakRss(service.pid) as memory,
            # One channel shared by all threads, as a client process holds one per target:
            # it multiplexes the concurrent calls over one HTTP/2 connection.
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = command_pb2_grpc.WalletCommandStub(channel)

            def send(deposit: Deposit) -> None:
                stub.RecordTransaction(
                    _request(deposit), timeout=CALL_TIMEOUT_SECONDS, metadata=auth.metadata
                )

            yield send, memory


def _request(deposit: Deposit) -> command_pb2.RecordTransactionRequest:
    return command_pb2.RecordTransactionRequest(
        wallet_id=deposit.wallet_id,
        request_id=deposit.request_id,
        occurred_at=datetime_to_timestamp(deposit.occurred_at),
        amount=format_amount(deposit.amount),
    )


def _contention(calls: int, rng: random.Random) -> list[ContentionResult]:
    """Both schemes get the same deposits: one wallet, one past hour (warm-up: the hour
    before it)."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    one_hour, wallet = timedelta(hours=1), WALLETS[:1]
    warmup = _deposits(
        "contention-warmup", min(calls, WARMUP_CALLS), wallet, hour - one_hour, one_hour, rng
    )
    deposits = _deposits("contention", calls, wallet, hour, one_hour, rng)
    results = []
    _progress(f"seed's scheme, {CONTENTION_WRITERS} writers into one hour")
    with _fresh_dynamodb():
        seed = SeedScheme.with_new_table(dynamodb_client(), SEED_TABLE)
        results.append(
            measure_contention(seed, warmup, deposits, CONTENTION_WRITERS, RESEND_SHARE, rng)
        )
    _progress(f"our DynamoWriteStore, {CONTENTION_WRITERS} writers into one hour")
    with _fresh_dynamodb():
        table, client = _new_ledger_table(), dynamodb_client()
        store = DynamoWriteStore(client, table, CommandSettings().aggregate_shards)
        ours = OurScheme(store, client, table)
        results.append(
            measure_contention(ours, warmup, deposits, CONTENTION_WRITERS, RESEND_SHARE, rng)
        )
    return results


def _report(
    paths: list[PathResult],
    contention: list[ContentionResult],
    records: int,
    load: tuple[float, float],
) -> str:
    return "\n\n".join(
        [
            "## wallet bench write",
            _setup(records, load),
            "### (a) bare boto3 transaction and (b) RecordTransaction over gRPC",
            markdown_table(
                ["path", "clients", "records/s", "p50 ms", "p99 ms", "errors"],
                [_path_row(result) for result in paths],
            ),
            markdown_table(
                ["clients", "b/a records/s", "command service peak RSS"],
                [_ratio_row(paths, clients) for clients in CLIENT_COUNTS],
            ),
            "### Targets",
            markdown_table(["target", "measured", "limit", "verdict"], _target_rows(paths)),
            f"### (c) {CONTENTION_WRITERS} concurrent writers into one hour",
            markdown_table(
                [
                    "scheme",
                    "calls",
                    "rejected",
                    "rejection rate",
                    "duplicates sent",
                    "duplicates counted twice",
                    "Σ aggregates",
                    "Σ records",
                    "Σ aggregates = Σ records",
                ],
                [_contention_row(result) for result in contention],
            ),
            _contention_notes(contention),
            *_error_notes(paths, contention),
        ]
    )


def _setup(records: int, load: tuple[float, float]) -> str:
    hours = RECENT_HOURS // timedelta(hours=1)
    return (
        f"DynamoDB Local {find_jar().parent.name.removeprefix('dynamodb_local_')}, in memory, "
        f"a new one for each path and phase; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} at the start and {load[1]:.1f} at the end. Per path and client count: "
        f"{min(records, WARMUP_CALLS)} warm-up calls, then {records} measured calls in "
        f"{ROUNDS} rounds (a b b a a b ...), the same distinct deposits for both paths, on "
        f"{len(WALLETS)} wallets over the last {hours} hours. Each client sends its next call "
        "when the previous one returned. (a) shares one boto3 client between its threads, as "
        "the command service does; (b) shares one gRPC channel, served by `wallet serve "
        f"command` ({CommandSettings().grpc_workers} workers) in its own process. {AUTH_NOTE}"
    )


def _path_row(result: PathResult) -> list[str]:
    latencies = result.run.latencies
    return [
        result.path,
        str(result.clients),
        f"{result.run.successes_per_second:.1f}",
        milliseconds(percentile(latencies, 50)) if latencies else "n/a",
        milliseconds(percentile(latencies, 99)) if latencies else "n/a",
        str(len(result.run.errors)),
    ]


def _throughput(paths: list[PathResult], path: str, clients: int) -> float:
    return next(r.run.successes_per_second for r in paths if (r.path, r.clients) == (path, clients))


def _ratio(paths: list[PathResult], clients: int) -> float:
    bare = _throughput(paths, BARE, clients)
    return _throughput(paths, GRPC, clients) / bare if bare else math.nan


def _grpc_results(paths: list[PathResult]) -> list[PathResult]:
    return [r for r in paths if r.path == GRPC]


def _peak_rss_mb(results: list[PathResult]) -> float:
    """The command service's largest peak RSS in MB over `results` of the gRPC path."""
    return max(r.peak_rss_bytes or 0 for r in results) / 1e6


def _ratio_row(paths: list[PathResult], clients: int) -> list[str]:
    rss = _peak_rss_mb([r for r in _grpc_results(paths) if r.clients == clients])
    return [str(clients), f"{_ratio(paths, clients):.2f}", f"{rss:.0f} MB"]


def _target_rows(paths: list[PathResult]) -> list[list[str]]:
    ratio, rss = _ratio(paths, TARGET_CLIENTS), _peak_rss_mb(_grpc_results(paths))
    return [
        [
            f"b/a records/s at {TARGET_CLIENTS} clients",
            f"{ratio:.2f}",
            f"≥ {TARGET_RATIO:g}",
            _verdict(ratio >= TARGET_RATIO),
        ],
        [
            "command service peak RSS",
            f"{rss:.0f} MB",
            f"≤ {TARGET_RSS_MB:g} MB",
            _verdict(rss <= TARGET_RSS_MB),
        ],
    ]


def _verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def _contention_row(result: ContentionResult) -> list[str]:
    return [
        result.scheme,
        str(result.calls),
        str(result.rejected),
        f"{result.rejection_rate:.1%}",
        str(result.resent),
        str(result.counted_twice),
        str(result.totals.aggregates),
        str(result.totals.records),
        "yes" if result.totals.agree else "no",
    ]


def _contention_notes(contention: list[ContentionResult]) -> str:
    calls = contention[0].calls
    return (
        f"{CONTENTION_WRITERS} threads send {calls} distinct deposits of one wallet, all in "
        f"one hour, after {min(calls, WARMUP_CALLS)} warm-up calls into the hour before. "
        "Rejected: the call did not store its deposit (for ours: did not return Recorded); "
        "the client would have to retry. Then "
        f"{RESEND_SHARE:.0%} as many of the stored deposits are sent again, one at a time, "
        "with the same request id, as a client does that lost an answer: counted twice means "
        "stored again. Σ: the table's aggregate items against its record items (each "
        "table also holds the warm-up)."
    )


def _error_notes(paths: list[PathResult], contention: list[ContentionResult]) -> list[str]:
    notes = [
        f"{r.path} at {r.clients} clients failed {len(r.run.errors)} calls; the first: "
        f"{r.run.errors[0]!r:.300}"
        for r in paths
        if r.run.errors
    ]
    notes += [f"{r.scheme} raised: {r.first_error!r:.300}" for r in contention if r.first_error]
    return notes
