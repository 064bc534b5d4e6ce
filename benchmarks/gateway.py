"""`wallet bench gateway`: what the REST gateway costs its callers over what it fronts,
measured on a `wallet dev` stack that the benchmark starts, all in one run:

1. records/s through POST /v1/wallets/{w}/records at 32 concurrent HTTP clients, against the
   bare boto3 two-item transaction loop at 32 clients on the stack's own DynamoDB Local and
   table, the two taking turns;
2. a one-year history (8,760 points, UTC) over GET /v1/wallets/{w}/history against
   GetBalanceHistory over gRPC to the stack's query service, for the same seeded wallet;
3. `wallet dev` from spawn to GET /readyz == 200, on a fresh data folder and on a restart;
4. the peak RSS (and the CPU per record) of each of the stack's processes while it is
   measured.

Figures go to stdout as markdown; progress goes to stderr.
"""

import os
import queue
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import grpc
import httpx
import psutil
from sqlalchemy.engine import make_url

from benchmarks import gateway_statements
from benchmarks.auth import NOTE as AUTH_NOTE
from benchmarks.auth import BenchAuth, new_bench_auth
from benchmarks.figures import Target, markdown_table, milliseconds, percentile
from benchmarks.gateway_statements import StatementsResult
from benchmarks.history_seed import SeededWallet, Seeding, seed_read_model
from benchmarks.load import LoadRun, combined, run_concurrently
from benchmarks.stack import (
    RSS_SAMPLE_SECONDS,
    Stack,
    cpu_seconds,
    new_stack,
    peak_rss_by_role,
    read_model_url,
    run_on_stack,
    running,
    stack_database,
    stack_processes,
)
from benchmarks.turns import timed_in_turns
from harness.scratch_database import ADMIN_URL_ENV, configured_server
from services.ledger.adapters.ledger_table import record_transaction_items
from services.ledger.adapters.write_store import dynamodb_client
from services.ledger.domain.money import format_amount
from services.ledger.domain.records import Deposit
from services.platform.proto_time import datetime_to_timestamp
from services.platform.settings import CommandSettings
from wallet.v1 import query_pb2, query_pb2_grpc
from wallet_cli.local.dynamodb_local import LOCAL_AWS_ENV, find_jar

DEFAULT_RECORDS = 15_000
DEFAULT_HISTORY_CALLS = 100
CLIENTS = 32
WARMUP_RECORDS = 500
ROUNDS = 4
HISTORY_WARMUP_CALLS = 3
# Each wallet's caller writes its datetimes in its own offset, as clients around the world do.
WALLET_ZONES = {
    "gw-alice": ZoneInfo("Europe/Paris"),
    "gw-bob": ZoneInfo("America/New_York"),
    "gw-chen": ZoneInfo("Asia/Shanghai"),
    "gw-dana": ZoneInfo("UTC"),
}
RECENT_HOURS = timedelta(hours=6)
HISTORY_WALLET = "gw-history"
POINTS = 8760
CALL_TIMEOUT_SECONDS = 30.0

RECORDS_RATIO_FLOOR = 0.6
HISTORY_RATIO_LIMIT = 1.2  # the statements issue: REST within 1.2x of gRPC
READY_LIMIT_SECONDS = 15.0

BOTO3 = "bare boto3 TransactWriteItems"
REST = "REST POST /records"
HISTORY_REST = "REST GET /history"
HISTORY_GRPC = "gRPC GetBalanceHistory"
CLIENT = "benchmark client (this process)"


def run_gateway_benchmark(
    records: int = DEFAULT_RECORDS,
    history_calls: int = DEFAULT_HISTORY_CALLS,
    statement_records: int = gateway_statements.DEFAULT_RECORDS,
) -> int:
    """Measures everything on one stack and prints it as markdown; 0 once it ran, whatever
    it found. `records`: measured calls per write path; `history_calls`: per history path;
    `statement_records`: the year of records the CSV export streams."""
    timeline = Timeline()

    def measure_and_report() -> int:
        measurement = _measure(
            records, history_calls, statement_records, random.Random(0), timeline
        )
        print(_report(measurement, timeline, records, history_calls))
        return 0

    return run_on_stack("gateway", measure_and_report)


def _progress(message: str) -> None:
    print(f"wallet bench gateway: {message}", file=sys.stderr, flush=True)


class Timeline:
    """How long each phase took and the machine's 1-minute load average at its end, so a
    reader can tell a slow figure from a busy machine."""

    def __init__(self) -> None:
        self.load_at_start = os.getloadavg()[0]
        self.phases: list[tuple[str, float, float]] = []
        self._since = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases.append((phase, now - self._since, os.getloadavg()[0]))
        self._since = now


# --- CPU by role ----------------------------------------------------------------------------


CpuSeconds = dict[str, float]


def _cpu_by_role(stack_pid: int, pgdata: Path | None) -> CpuSeconds:
    """CPU seconds used so far by each role of the stack and by this process (the
    benchmark's clients)."""
    cpu = {
        role: cpu_seconds(processes)
        for role, processes in stack_processes(stack_pid, pgdata).items()
    }
    cpu[CLIENT] = cpu_seconds([psutil.Process()])
    return cpu


def _cpu_used(before: CpuSeconds, after: CpuSeconds) -> CpuSeconds:
    return {role: seconds - before.get(role, 0.0) for role, seconds in after.items()}


def _cpu_summed(parts: Sequence[CpuSeconds]) -> CpuSeconds:
    total: CpuSeconds = {}
    for part in parts:
        for role, seconds in part.items():
            total[role] = total.get(role, 0.0) + seconds
    return total


# --- records: REST vs bare boto3 -----------------------------------------------------------


@dataclass(frozen=True)
class RecordPath:
    path: str
    run: LoadRun[Deposit, None]
    cpu_seconds: CpuSeconds
    """By role, during the measured calls."""


def _deposits(count: int, rng: random.Random) -> list[Deposit]:
    """Deposits of 0.01 to 100.00 on a few wallets at random instants (to the millisecond,
    as clients send them) over the last hours, each with a new request id."""
    start = datetime.now(UTC) - RECENT_HOURS
    wallets = list(WALLET_ZONES)
    deposits = []
    for _ in range(count):
        instant = start + RECENT_HOURS * rng.random()
        deposits.append(
            Deposit(
                wallet_id=rng.choice(wallets),
                request_id=str(uuid.uuid4()),
                occurred_at=instant.replace(microsecond=instant.microsecond // 1000 * 1000),
                amount=Decimal(rng.randint(1, 10_000)).scaleb(-2),
            )
        )
    return deposits


def _with_new_ids(deposits: Sequence[Deposit]) -> list[Deposit]:
    """The same deposits under new request ids: both paths write to the same table, where
    a request id already stored would be a replay, not a write."""
    return [replace(deposit, request_id=str(uuid.uuid4())) for deposit in deposits]


def _boto3_sender(stack: Stack) -> Callable[[Deposit], None]:
    """Sends the command service's exact transaction straight to the stack's DynamoDB Local
    and table (DynamoDB Local is much slower on every stream-enabled table but the first
    one holding data, so a table of its own would measure the emulator, not the path). One
    client shared by all threads, built as the command service builds its own (same
    retries, timeouts and connection pool)."""
    os.environ.update({**LOCAL_AWS_ENV, "AWS_ENDPOINT_URL_DYNAMODB": stack.dynamodb_endpoint})
    client = dynamodb_client()
    settings = CommandSettings()

    def send(deposit: Deposit) -> None:
        items = record_transaction_items(
            settings.table_name,
            deposit,
            deposit.shard(settings.aggregate_shards),
            datetime.now(UTC),
        )
        client.transact_write_items(
            TransactItems=items,  # type: ignore[arg-type]
            ClientRequestToken=str(uuid.uuid4()),
        )

    return send


def _record_body(deposit: Deposit) -> dict[str, str]:
    local = deposit.occurred_at.astimezone(WALLET_ZONES[deposit.wallet_id])
    return {
        "datetime": local.isoformat(timespec="milliseconds"),
        "amount": format_amount(deposit.amount),
    }


@contextmanager
def _rest_sender(stack: Stack) -> Iterator[Callable[[Deposit], None]]:
    """POSTs each deposit with its request id as Idempotency-Key; a call that does not get
    201 Created fails. Synchronous httpx.Clients, one per concurrent client: each keeps
    its own keep-alive connection, as 32 independent callers would. A client is taken for
    each call and put back, so the clients (and their connections) outlive the threads
    that run_concurrently starts for each run; with as many clients as threads, a thread
    never waits for one."""
    idle: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
    with ExitStack() as clients:
        for _ in range(CLIENTS):
            client = httpx.Client(
                base_url=stack.gateway_url,
                headers=stack.auth.headers,
                timeout=CALL_TIMEOUT_SECONDS,
            )
            idle.put(clients.enter_context(client))

        def send(deposit: Deposit) -> None:
            client = idle.get()
            try:
                response = client.post(
                    f"/v1/wallets/{deposit.wallet_id}/records",
                    json=_record_body(deposit),
                    headers={"Idempotency-Key": deposit.request_id},
                )
            finally:
                idle.put(client)
            if response.status_code != 201:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")

        yield send


def _record_paths(
    stack: Stack, stack_pid: int, records: int, rng: random.Random, timeline: Timeline
) -> list[RecordPath]:
    """Both paths at CLIENTS clients, after a warm-up of each (the emulator's JIT needs a
    few hundred calls). The measured calls go in alternating rounds, boto3 then REST, with
    the same deposit contents, so a change in what else runs on the machine hits both."""
    with _rest_sender(stack) as rest:
        senders = {BOTO3: _boto3_sender(stack), REST: rest}
        warmup = _deposits(WARMUP_RECORDS, rng)
        for send in senders.values():
            run_concurrently(send, _with_new_ids(warmup), CLIENTS)
        timeline.mark("records: warm-up")
        contents = _deposits(records, rng)
        measured = {path: _with_new_ids(contents) for path in senders}
        runs: dict[str, list[LoadRun[Deposit, None]]] = {path: [] for path in senders}
        cpu: dict[str, list[CpuSeconds]] = {path: [] for path in senders}
        for round_ in range(ROUNDS):
            for path, send in senders.items():
                before = _cpu_by_role(stack_pid, stack.pgdata)
                runs[path].append(run_concurrently(send, measured[path][round_::ROUNDS], CLIENTS))
                cpu[path].append(_cpu_used(before, _cpu_by_role(stack_pid, stack.pgdata)))
        timeline.mark("records: measured")
    return [RecordPath(path, combined(runs[path]), _cpu_summed(cpu[path])) for path in senders]


# --- history: REST vs gRPC ---------------------------------------------------------------

Balances = list[tuple[datetime, Decimal]]


class Fetcher(NamedTuple):
    """One way to get the answer: `fetch` is what is timed; `balances` reads its answer."""

    fetch: Callable[[], Any]
    balances: Callable[[Any], Balances]


@dataclass(frozen=True)
class HistoryResult:
    seeding: Seeding
    first: datetime
    last: datetime
    latencies: dict[str, list[float]]
    answers: dict[str, Balances]


def _rest_history(client: httpx.Client, first: datetime, last: datetime) -> Fetcher:
    params = {"start": _utc_text(first), "end": _utc_text(last), "tz": "UTC"}

    def fetch() -> Any:
        response = client.get(f"/v1/wallets/{HISTORY_WALLET}/history", params=params)
        response.raise_for_status()
        return response.json()

    def balances(answer: Any) -> Balances:
        return [
            (datetime.fromisoformat(point["datetime"]), Decimal(point["balance"]))
            for point in answer["points"]
        ]

    return Fetcher(fetch, balances)


def _grpc_history(
    stub: query_pb2_grpc.WalletQueryStub, auth: BenchAuth, first: datetime, last: datetime
) -> Fetcher:
    request = query_pb2.GetBalanceHistoryRequest(
        wallet_id=HISTORY_WALLET,
        start=datetime_to_timestamp(first),
        end=datetime_to_timestamp(last),
        time_zone="UTC",
    )

    def balances(answer: query_pb2.GetBalanceHistoryResponse) -> Balances:
        return [(p.time.ToDatetime(tzinfo=UTC), Decimal(p.balance)) for p in answer.points]

    # The stub parses the whole response message before it returns.
    return Fetcher(
        lambda: stub.GetBalanceHistory(request, timeout=60, metadata=auth.metadata), balances
    )


def _utc_text(instant: datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%SZ}"


def _taking_turns(fetchers: dict[str, Fetcher], calls: int) -> dict[str, list[float]]:
    fetches = {path: fetcher.fetch for path, fetcher in fetchers.items()}
    return timed_in_turns(fetches, calls, HISTORY_WARMUP_CALLS)


def _history(stack: Stack, database_url: str, calls: int, timeline: Timeline) -> HistoryResult:
    """Seeds a year of 15-minute buckets for one wallet straight into the stack's read model
    (which holds no other wallet yet: the seed derives its totals over the whole table),
    then times its last year of hours over REST and over gRPC."""
    last = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(hours=POINTS - 1)
    seeding = seed_read_model(database_url, [SeededWallet(HISTORY_WALLET, days=365, end=last)])
    timeline.mark("history: seeding")
    with (
        httpx.Client(base_url=stack.gateway_url, headers=stack.auth.headers, timeout=60) as client,
        grpc.insecure_channel(stack.query_address) as channel,
    ):
        stub = query_pb2_grpc.WalletQueryStub(channel)
        fetchers = {
            HISTORY_REST: _rest_history(client, first, last),
            HISTORY_GRPC: _grpc_history(stub, stack.auth, first, last),
        }
        latencies = _taking_turns(fetchers, calls)
        answers = {path: fetcher.balances(fetcher.fetch()) for path, fetcher in fetchers.items()}
    timeline.mark("history: measured")
    return HistoryResult(seeding, first, last, latencies, answers)


# --- one run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    stack: Stack
    ready_seconds: dict[str, float]
    history: HistoryResult
    statements: StatementsResult
    records: list[RecordPath]
    peak_rss_bytes: Counter[str]


def _benchmark_server() -> str | None:
    """The admin URL of the benchmark's PostgreSQL server, None when it cannot be reached
    (the stack then runs its embedded PostgreSQL)."""
    return configured_server(ADMIN_URL_ENV)


def _measure(
    records: int,
    history_calls: int,
    statement_records: int,
    rng: random.Random,
    timeline: Timeline,
) -> Measurement:
    """Starts the stack on a fresh folder and stops it once ready, restarts it on the same
    folder, and measures history and records on the restarted stack."""
    with (
        tempfile.TemporaryDirectory(prefix="wallet-bench-gateway-") as scratch,
        stack_database(_benchmark_server(), "wallet_bench_gateway") as database_url,
    ):
        stack = new_stack(Path(scratch) / "dev", database_url, new_bench_auth())
        ready: dict[str, float] = {}
        _progress(f"first start of wallet dev (fresh data folder {stack.dev_dir})")
        with running(stack, Path(scratch) / "dev-first.log") as first:
            ready["first start (fresh data folder)"] = first.ready_seconds
        timeline.mark("first start, then stop")
        _progress("restart of wallet dev on the same data folder")
        log = Path(scratch) / "dev-restart.log"
        with (
            running(stack, log) as started,
            peak_rss_by_role(started.process.pid, stack.pgdata) as memory,
        ):
            ready["restart (same data folder)"] = started.ready_seconds
            timeline.mark("restart")
            _progress(f"history: seeding one year, then {history_calls} calls per path")
            history = _history(stack, read_model_url(stack, log), history_calls, timeline)
            _progress(f"statements: seeding {statement_records:,} records, then CSV exports")
            statements = gateway_statements.measure_statements(
                stack, read_model_url(stack, log), started.process.pid, statement_records
            )
            timeline.mark("statements: CSV exports")
            _progress(f"records: {WARMUP_RECORDS} warm-up, then {records:,} calls per path")
            paths = _record_paths(stack, started.process.pid, records, rng, timeline)
        timeline.mark("stop")
    return Measurement(stack, ready, history, statements, paths, memory.peaks)


# --- the report ----------------------------------------------------------------------------


def _report(measurement: Measurement, timeline: Timeline, records: int, history_calls: int) -> str:
    return "\n\n".join(
        [
            "## wallet bench gateway",
            _setup(measurement.stack, timeline, records),
            f"### Records at {CLIENTS} clients: REST gateway vs bare boto3, same DynamoDB Local",
            markdown_table(
                ["path", "calls", "records/s", "p50 ms", "p99 ms", "errors"],
                [_record_row(path) for path in measurement.records],
            ),
            f"REST / boto3 records/s: {_records_ratio(measurement.records):.2f}",
            "CPU per record during the measured calls, by process (ms of CPU time; "
            f"{os.cpu_count()} CPUs for everything):",
            _cpu_table(measurement.records),
            f"### History: one year ({POINTS:,} points, UTC), REST vs gRPC",
            _history_setup(measurement.history, history_calls),
            markdown_table(
                ["path", "calls", "p50 ms", "p99 ms"],
                [_latency_row(path, s) for path, s in measurement.history.latencies.items()],
            ),
            f"REST / gRPC p50: {_history_ratio(measurement.history):.2f}",
            _agreement(measurement.history.answers),
            "### Statements: a year of records as CSV over REST",
            gateway_statements.report(measurement.statements),
            "### wallet dev: spawn to GET /readyz == 200",
            markdown_table(
                ["start", "seconds"],
                [[start, f"{seconds:.1f}"] for start, seconds in measurement.ready_seconds.items()],
            ),
            "### Peak RSS per process of the stack",
            _rss_table(measurement.stack, measurement.peak_rss_bytes),
            "### Targets",
            _targets(measurement),
            "### Phases",
            markdown_table(
                ["phase", "seconds", "1-min load average at its end"],
                [[p, f"{s:.1f}", f"{load:.1f}"] for p, s, load in timeline.phases],
            ),
            *_error_notes(measurement.records),
        ]
    )


def _setup(stack: Stack, timeline: Timeline, records: int) -> str:
    database = (
        "a new database on the PostgreSQL server at "
        f"{make_url(stack.database_url).render_as_string(hide_password=True)}"
        if stack.database_url is not None
        else "the stack's embedded PostgreSQL (the benchmark's server was unreachable)"
    )
    return (
        f"`wallet dev` started by the benchmark: DynamoDB Local "
        f"{find_jar().parent.name.removeprefix('dynamodb_local_')} on disk in a temporary "
        f"data folder, read model in {database}, the services, the updater (--follow) and the "
        f"gateway as its children. {os.cpu_count()} CPUs, shared with other work; 1-minute "
        f"load average {timeline.load_at_start:.1f} at the start, "
        f"{max(load for _, _, load in timeline.phases):.1f} at most at a phase's end. "
        f"{AUTH_NOTE}\n\n"
        f"Records: {WARMUP_RECORDS} warm-up calls per path, then {records:,} measured calls per "
        f"path in {ROUNDS} rounds taking turns (boto3, REST, boto3, REST, ...), each from "
        f"{CLIENTS} closed-loop clients (each sends its next call when the previous one "
        f"returned). The same deposit contents on both paths, each under a new request id: "
        f"{len(WALLET_ZONES)} wallets, instants over the last "
        f"{RECENT_HOURS // timedelta(hours=1)} hours, 0.01 to 100.00. boto3: the command "
        "service's exact two-item transaction (record_transaction_items) into the stack's "
        "table, from one client shared by the threads, built as the command service builds "
        f"its own. REST: {CLIENTS} synchronous httpx.Client, one per client thread, each with "
        "its own keep-alive connection like independent callers; threads rather than an "
        "AsyncClient so that both paths run in the same closed-loop harness and are timed by "
        "the same code. Each POST carries a new Idempotency-Key and the wallet's datetime in "
        "its own zone's offset; anything but 201 counts as an error."
    )


def _record_row(result: RecordPath) -> list[str]:
    latencies = result.run.latencies
    return [
        result.path,
        str(len(result.run.calls)),
        f"{result.run.successes_per_second:.1f}",
        milliseconds(percentile(latencies, 50)) if latencies else "n/a",
        milliseconds(percentile(latencies, 99)) if latencies else "n/a",
        str(len(result.run.errors)),
    ]


def _records_ratio(paths: list[RecordPath]) -> float:
    rate = {result.path: result.run.successes_per_second for result in paths}
    return rate[REST] / rate[BOTO3] if rate[BOTO3] else float("nan")


def _cpu_table(paths: list[RecordPath]) -> str:
    roles = sorted({role for result in paths for role in result.cpu_seconds})
    per_record = {
        result.path: {
            role: seconds / max(len(result.run.latencies), 1)
            for role, seconds in result.cpu_seconds.items()
        }
        for result in paths
    }
    rows: list[list[object]] = [
        [role, *(f"{per_record[p.path].get(role, 0.0) * 1000:.2f}" for p in paths)]
        for role in roles
    ]
    rows.append(["**all**", *(f"{sum(per_record[p.path].values()) * 1000:.2f}" for p in paths)])
    return markdown_table(["process", *(p.path for p in paths)], rows)


def _history_setup(history: HistoryResult, calls: int) -> str:
    return (
        f"Wallet {HISTORY_WALLET}: {history.seeding.wallets[0].buckets:,} 15-minute buckets "
        f"seeded straight into the stack's read model in {history.seeding.seconds:.1f} s "
        f"({history.seeding.balances_checked} read-store balances checked against a direct "
        f"SUM). Hours {history.first:%Y-%m-%d %H:%M}Z to {history.last:%Y-%m-%d %H:%M}Z: "
        f"{calls} calls per path after {HISTORY_WARMUP_CALLS} untimed ones, the paths taking "
        "turns, one connection each. REST: GET /v1/wallets/{w}/history?start&end&tz=UTC with "
        "httpx, JSON decoded; gRPC: GetBalanceHistory to the query service, protobuf decoded."
    )


def _latency_row(path: str, seconds: list[float]) -> list[str]:
    return [
        path,
        str(len(seconds)),
        milliseconds(percentile(seconds, 50)),
        milliseconds(percentile(seconds, 99)),
    ]


def _history_ratio(history: HistoryResult) -> float:
    p50 = {path: percentile(seconds, 50) for path, seconds in history.latencies.items()}
    return p50[HISTORY_REST] / p50[HISTORY_GRPC]


def _agreement(answers: dict[str, Balances]) -> str:
    rest, grpc_ = answers[HISTORY_REST], answers[HISTORY_GRPC]
    equal = sum(1 for a, b in zip(rest, grpc_, strict=False) if a == b)
    same = "the same" if len(rest) == len(grpc_) == equal == POINTS else "NOT the same"
    return (
        f"Answers: {len(rest):,} REST points, {len(grpc_):,} gRPC points, {equal:,} with the "
        f"same hour and balance: {same} balances."
    )


def _rss_table(stack: Stack, peak_bytes: Counter[str]) -> str:
    rows: list[list[object]] = [
        [role, f"{peak / 1e6:.0f}"] for role, peak in sorted(peak_bytes.items())
    ]
    rows.append(["**sum of the peaks**", f"{sum(peak_bytes.values()) / 1e6:.0f}"])
    postgres = (
        "PostgreSQL's figure counts the shared buffers each backend touched once per process."
        if stack.pgdata is not None
        else "PostgreSQL is the benchmark's server, not the stack's: not sampled."
    )
    return (
        markdown_table(["process", "peak RSS MB"], rows)
        + f"\n\nSampled every {RSS_SAMPLE_SECONDS * 1000:.0f} ms with psutil from the restart "
        f"being ready to the end of the records, processes identified by command line. {postgres}"
    )


def _targets(measurement: Measurement) -> str:
    """The records ratio is a floor, which Target (a ceiling) cannot express: its row is
    built here in Target's format."""
    ratio = _records_ratio(measurement.records)
    verdict = "PASS" if ratio >= RECORDS_RATIO_FLOOR else "MISS"
    ceilings = [
        Target("history p50 REST / gRPC", _history_ratio(measurement.history), HISTORY_RATIO_LIMIT),
        *(
            Target(f"wallet dev ready, {start}", seconds, READY_LIMIT_SECONDS, " s")
            for start, seconds in measurement.ready_seconds.items()
        ),
        *gateway_statements.targets(measurement.statements),
    ]
    return markdown_table(
        ["target", "measured", "limit", "verdict"],
        [
            ["records/s REST / boto3", f"{ratio:.2f}", f"≥ {RECORDS_RATIO_FLOOR:g}", verdict],
            *(target.row() for target in ceilings),
        ],
    )


def _error_notes(paths: list[RecordPath]) -> list[str]:
    return [
        f"{result.path} failed {len(result.run.errors)} calls; the first: "
        f"{result.run.errors[0]!r:.300}"
        for result in paths
        if result.run.errors
    ]
