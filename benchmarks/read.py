"""`wallet bench read`: a one-year balance history (8,760 hourly points) from a wallet with
ten years of 15-minute data against the same from a wallet with one year, over real gRPC,
beside the same answer computed by a single SQL query in the same run.

The query service runs as a child process (`wallet serve query`), as deployed: the
benchmark's own client work (timing, decoding 8,760 points) does not share its interpreter,
so the latencies are what a client sees, minus the network.
"""

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import grpc
import psycopg

from benchmarks import read_records
from benchmarks.auth import NOTE as AUTH_NOTE
from benchmarks.auth import BenchAuth, new_bench_auth
from benchmarks.figures import Target, markdown_table, milliseconds, percentile, targets_table
from benchmarks.history_seed import SeededWallet, direct_balance, seed_read_model, seeding_table
from benchmarks.processes import child_env
from benchmarks.read_records import RecordsMeasurement
from benchmarks.records_seed import SeededRecords
from benchmarks.sigterm import interrupted_by_sigterm
from benchmarks.turns import timed_in_turns
from harness.processes import wallet_process
from harness.scratch_database import scratch_database
from services.ledger.adapters.database import SESSION_SETTINGS, create_database_engine
from services.ledger.adapters.read_store import PostgresReadStore, history_query
from services.ledger.domain.history import hour_grid
from services.platform.proto_time import datetime_to_timestamp
from services.query.servicer import history_response
from wallet.v1 import query_pb2, query_pb2_grpc
from wallet_cli.local.dynamodb_local import free_port

TEN_YEARS = "ten-years"
ONE_YEAR = "one-year"
POINTS = 8760
ZONES = ("UTC", "Europe/Paris")
RATIO_LIMIT = 1.5
# The statements issue's target for a year of history over gRPC against the same from SQL.
SQL_RATIO_LIMIT = 1.3

# One SQL statement for the UTC answer: hour starts from generate_series, each hour's change
# from bucket_totals, and the balance as the opening balance (last day_totals row before the
# first hour's day plus that day's buckets, as the read store computes it) plus a running sum.
_HISTORY_SQL = """
WITH opening AS (
  SELECT
    coalesce((SELECT balance_after FROM day_totals
              WHERE wallet_id = %(wallet)s
                AND day < ((%(first)s - interval '1 hour') AT TIME ZONE 'UTC')::date
              ORDER BY day DESC LIMIT 1), 0)
    + coalesce((SELECT sum(amount) FROM bucket_totals
                WHERE wallet_id = %(wallet)s
                  AND bucket >= date_trunc('day', %(first)s - interval '1 hour', 'UTC')
                  AND bucket < %(first)s - interval '1 hour'), 0) AS balance
),
changes AS (
  SELECT date_bin('1 hour', bucket, %(first)s) + interval '1 hour' AS hour,
         sum(amount) AS change
  FROM bucket_totals
  WHERE wallet_id = %(wallet)s
    AND bucket >= %(first)s - interval '1 hour' AND bucket < %(last)s
  GROUP BY 1
)
SELECT h.hour,
       o.balance + sum(coalesce(c.change, 0)) OVER (ORDER BY h.hour) AS balance,
       coalesce(c.change, 0) AS change
FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz, interval '1 hour') AS h(hour)
CROSS JOIN opening o
LEFT JOIN changes c USING (hour)
ORDER BY h.hour
"""

Balances = dict[datetime, Decimal]


class Case(NamedTuple):
    path: str  # "gRPC" or "SQL"
    wallet: str
    zone: str


class Fetcher(NamedTuple):
    """One way to get an answer: `fetch` is what is timed; `balances` decodes its answer."""

    fetch: Callable[[], Any]
    balances: Callable[[Any], Balances]


def _wallets(end: datetime) -> list[SeededWallet]:
    """Both wallets' histories end at `end`, one bucket per 15 minutes, on one shard."""
    return [
        SeededWallet(TEN_YEARS, days=3650, end=end, shards=1),
        SeededWallet(ONE_YEAR, days=365, end=end, shards=1),
    ]


def _history_range(end: datetime) -> tuple[datetime, datetime]:
    """The last POINTS hour starts up to `end`: the ten-year wallet's last year, and the
    whole of the one-year wallet (whose first bucket is the first point's hour)."""
    return end - timedelta(hours=POINTS - 1), end


def _grpc_fetcher(
    stub: query_pb2_grpc.WalletQueryStub,
    auth: BenchAuth,
    wallet: str,
    zone: str,
    first: datetime,
    last: datetime,
) -> Fetcher:
    request = query_pb2.GetBalanceHistoryRequest(
        wallet_id=wallet,
        start=datetime_to_timestamp(first),
        end=datetime_to_timestamp(last),
        time_zone=zone,
    )

    def balances(response: query_pb2.GetBalanceHistoryResponse) -> Balances:
        return {p.time.ToDatetime(tzinfo=UTC): Decimal(p.balance) for p in response.points}

    return Fetcher(
        lambda: stub.GetBalanceHistory(request, timeout=60, metadata=auth.metadata), balances
    )


def _sql_fetcher(
    connection: psycopg.Connection, wallet: str, first: datetime, last: datetime
) -> Fetcher:
    parameters = {"wallet": wallet, "first": first, "last": last}

    def balances(rows: list[tuple[datetime, Decimal, Decimal]]) -> Balances:
        return {hour: balance for hour, balance, _ in rows}

    return Fetcher(lambda: connection.execute(_HISTORY_SQL, parameters).fetchall(), balances)


def _latencies(fetchers: dict[Case, Fetcher], calls: int, warmup: int) -> dict[Case, list[float]]:
    return timed_in_turns({case: f.fetch for case, f in fetchers.items()}, calls, warmup)


def _agreement(fetchers: dict[Case, Fetcher]) -> list[list[object]]:
    """Per gRPC case: how many points carry the same balance as the SQL answer's (UTC hour
    starts are also the Paris hour starts)."""
    answers = {case: fetcher.balances(fetcher.fetch()) for case, fetcher in fetchers.items()}
    rows: list[list[object]] = []
    for case, balances in answers.items():
        if case.path != "gRPC":
            continue
        sql = answers[Case("SQL", case.wallet, "UTC")]
        equal = sum(1 for hour, balance in balances.items() if sql.get(hour) == balance)
        rows.append([case.wallet, case.zone, f"{len(balances):,}", f"{len(sql):,}", f"{equal:,}"])
    return rows


def _direct_sum_checks(
    connection: psycopg.Connection, fetchers: dict[Case, Fetcher], wallet: str
) -> list[list[object]]:
    """A few gRPC balances against a SUM over all of the wallet's shard_aggregates rows."""
    fetcher = fetchers[Case("gRPC", wallet, "UTC")]
    balances = fetcher.balances(fetcher.fetch())
    hours = sorted(balances)
    rows: list[list[object]] = []
    for hour in (hours[0], hours[len(hours) // 2], hours[-1]):
        direct = direct_balance(connection, wallet, hour)
        rows.append([wallet, f"{hour:%Y-%m-%d %H:%M}Z", balances[hour], direct])
    return rows


def _latency_rows(latencies: dict[Case, list[float]]) -> list[list[object]]:
    return [
        [
            case.path,
            case.wallet,
            case.zone,
            len(samples),
            milliseconds(percentile(samples, 50)),
            milliseconds(percentile(samples, 99)),
        ]
        for case, samples in latencies.items()
    ]


def _targets(latencies: dict[Case, list[float]]) -> list[Target]:
    def p50(path: str, wallet: str, zone: str) -> float:
        return percentile(latencies[Case(path, wallet, zone)], 50)

    targets = [
        Target(
            f"gRPC p50 ten-years / one-year ({zone})",
            p50("gRPC", TEN_YEARS, zone) / p50("gRPC", ONE_YEAR, zone),
            RATIO_LIMIT,
        )
        for zone in ZONES
    ]
    targets += [
        Target(
            f"p50 gRPC / SQL ({wallet}, UTC)",
            p50("gRPC", wallet, "UTC") / p50("SQL", wallet, "UTC"),
            SQL_RATIO_LIMIT,
        )
        for wallet in (TEN_YEARS, ONE_YEAR)
    ]
    return targets


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


def _plan_row(label: str, wallet: str, explained: dict[str, Any]) -> list[object]:
    plan = explained["Plan"]
    scans = list(_scans(plan))
    rows_read = sum(scan["Actual Rows"] * scan["Actual Loops"] for scan in scans)
    buffers = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    return [
        label,
        wallet,
        "; ".join(f"{scan['Node Type']} on {scan['Relation Name']}" for scan in scans),
        f"{rows_read:,}",
        buffers,
        f"{explained['Execution Time']:.1f}",
    ]


def _explained(connection: psycopg.Connection, statement: str, parameters: Any) -> Any:
    explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement
    row = connection.execute(explain, parameters).fetchone()
    assert row is not None
    return row[0][0]


def _explained_read_store(
    database_url: str, wallets: list[SeededWallet], first: datetime, last: datetime
) -> list[list[object]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the read store's history statement for the UTC history:
    the statement and parameters the store itself runs."""
    bounds = hour_grid(first, last, ZoneInfo("UTC")).bound_seconds
    rows = []
    with psycopg.connect(database_url) as connection:
        for setting in SESSION_SETTINGS:  # the read store's sessions, JIT off among them
            connection.execute(setting)
        for wallet in wallets:
            statement, parameters = history_query(wallet.wallet_id, bounds)
            explained = _explained(connection, statement, parameters)
            rows.append(_plan_row("history statement", wallet.wallet_id, explained))
    return rows


def _server_split(
    database_url: str, wallet: str, first: datetime, last: datetime
) -> list[list[object]]:
    """Where one ten-years UTC answer's time goes, calling the servicer's steps in this
    process (median of 5): the grid, the read store, the protobuf messages."""
    engine = create_database_engine(database_url, pool_size=1)
    store = PostgresReadStore(engine)
    steps: dict[str, list[float]] = {
        "hour_grid": [],
        "read store history()": [],
        "point messages": [],
    }
    try:
        for _ in range(5):
            marks = [time.perf_counter()]
            grid = hour_grid(first, last, ZoneInfo("UTC"))
            marks.append(time.perf_counter())
            history = store.history(wallet, grid.bound_seconds)
            marks.append(time.perf_counter())
            history_response(grid, history.points)
            marks.append(time.perf_counter())
            for samples, (started, ended) in zip(steps.values(), pairwise(marks), strict=True):
                samples.append(ended - started)
    finally:
        engine.dispose()
    return [[step, milliseconds(percentile(samples, 50))] for step, samples in steps.items()]


@dataclass(frozen=True)
class Measurement:
    latencies: dict[Case, list[float]]
    agreement: list[list[object]]
    direct_sums: list[list[object]]
    records: RecordsMeasurement


def _measured(
    database_url: str,
    wallets: list[SeededWallet],
    records: SeededRecords,
    first: datetime,
    last: datetime,
    calls: int,
    warmup: int,
) -> Measurement:
    """Latencies of every case, with the query service running as a child process, and the
    checks that gRPC and SQL give the same balances."""
    port, auth = free_port(), new_bench_auth()
    env = child_env(
        {
            **auth.env(),
            "DATABASE_URL": database_url,
            "WALLET_QUERY_PORT": str(port),
            "WALLET_LISTEN_HOST": "127.0.0.1",
        }
    )
    with (
        tempfile.TemporaryDirectory(prefix="wallet-bench-") as logs,
        wallet_process(["serve", "query"], env, Path(logs) / "query.log", grpc_port=port),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        psycopg.connect(database_url, autocommit=True) as connection,
    ):
        stub = query_pb2_grpc.WalletQueryStub(channel)
        fetchers = {
            Case("gRPC", w.wallet_id, zone): _grpc_fetcher(
                stub, auth, w.wallet_id, zone, first, last
            )
            for zone in ZONES
            for w in wallets
        }
        fetchers |= {
            Case("SQL", w.wallet_id, "UTC"): _sql_fetcher(connection, w.wallet_id, first, last)
            for w in wallets
        }
        return Measurement(
            _latencies(fetchers, calls, warmup),
            _agreement(fetchers),
            _direct_sum_checks(connection, fetchers, TEN_YEARS),
            read_records.measure(stub, auth, connection, records, calls, warmup),
        )


def _print_measurement(
    measurement: Measurement, first: datetime, last: datetime, calls: int, warmup: int
) -> None:
    print(
        f"GetBalanceHistory from {first:%Y-%m-%d %H:%M}Z to {last:%Y-%m-%d %H:%M}Z "
        f"({POINTS:,} points), {calls} calls per case after {warmup} warm-up calls, the cases "
        "taking turns; query service as a child process (`wallet serve query`); SQL = the "
        f"same UTC answer from one statement via psycopg on one connection. {AUTH_NOTE}\n"
    )
    headers = ["path", "wallet", "zone", "calls", "p50 ms", "p99 ms"]
    print(markdown_table(headers, _latency_rows(measurement.latencies)) + "\n")
    print("Same balances, gRPC vs SQL (every point):\n")
    headers = ["wallet", "zone", "gRPC points", "SQL points", "equal balances"]
    print(markdown_table(headers, measurement.agreement) + "\n")
    headers = ["wallet", "point", "gRPC balance", "direct SUM over shard_aggregates"]
    print(markdown_table(headers, measurement.direct_sums) + "\n")


def run_read_benchmark(calls: int = 30, warmup: int = 3) -> int:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    wallets = _wallets(end)
    first, last = _history_range(end)
    with interrupted_by_sigterm(), scratch_database("wallet_bench_read") as url:
        seeding = seed_read_model(url, wallets)
        print("## wallet bench read\n")
        print(
            f"Seeded a throwaway read model in {seeding.seconds:.1f} s (COPY into "
            "shard_aggregates; bucket_totals and day_totals derived by SQL); "
            f"{seeding.balances_checked} read-store balances equal a direct SUM.\n"
        )
        print(seeding_table(seeding) + "\n")
        records = read_records.seed(url, end)
        measurement = _measured(url, wallets, records, first, last, calls, warmup)
        _print_measurement(measurement, first, last, calls, warmup)
        print("Read store statements, EXPLAIN (ANALYZE, BUFFERS) of the UTC history:\n")
        headers = ["statement", "wallet", "scans", "rows read", "buffers", "execution ms"]
        print(markdown_table(headers, _explained_read_store(url, wallets, first, last)) + "\n")
        print("Query service steps for one ten-years UTC answer (in-process, median of 5):\n")
        print(markdown_table(["step", "ms"], _server_split(url, TEN_YEARS, first, last)) + "\n")
        print("### Statements: ListRecords\n")
        print(read_records.report(measurement.records, calls, warmup) + "\n")
        targets = _targets(measurement.latencies) + read_records.targets(measurement.records)
        print(targets_table(targets))
    return 0
