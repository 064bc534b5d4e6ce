"""`wallet bench soak`: a whole `wallet dev` stack under a constant, moderate load through
the gateway for some minutes. Does it hold steady (throughput, errors, latency, updater
freshness), does each process's memory stay flat, and is every acknowledged deposit counted
exactly once at the end?

The load is paced (open loop): request i is due `i / rate` seconds after the start, whatever
the answers before it, sent by a pool of client threads. Of every ten requests six are
deposits (each with a new Idempotency-Key, on one of a few wallets), three balance reads and
one a day's history. Every interval (a twelfth of the run, at least 5 s) one row: requests/s
answered as expected by kind, errors by status, latency p50/p99 by kind, the age of the
balance answers' as_of (how far the updater trails), and each process's RSS.

At the end: each process's RSS at ready, after warm-up and at the end, with the rule for
"flat"; then the deposits whose outcome is unknown are sent again with the same key, the
balances are compared with the sum of the acknowledged deposits once the updater caught up,
and `wallet reconcile --records` runs against the stack's table and read model.

Figures go to stdout as markdown; progress to stderr. Exit 0 when it ran and every deposit
is accounted for, 1 when the correctness check fails, 2 when the stack failed, 130 when
interrupted. Figures alone never fail it.
"""

import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psutil
from sqlalchemy.engine import make_url

from benchmarks.auth import NOTE as AUTH_NOTE
from benchmarks.auth import BenchAuth, new_bench_auth
from benchmarks.figures import markdown_table, milliseconds, percentile
from benchmarks.processes import child_env
from benchmarks.stack import (
    POSTGRES,
    SUPERVISOR,
    RunningStack,
    Stack,
    StackFailed,
    cpu_seconds,
    new_stack,
    read_model_url,
    rss_by_role,
    run_on_stack,
    running,
    stack_database,
    stack_processes,
)
from harness.processes import tail
from services.ledger.domain.money import format_amount
from services.platform.settings import PROJECT_ROOT, DatabaseSettings, UpdaterSettings
from wallet_cli.local.dynamodb_local import LOCAL_AWS_ENV

DEFAULT_MINUTES = 2.0
DEFAULT_RATE = 50.0
INTERVALS = 12
MIN_INTERVAL_SECONDS = 5.0
WARMUP_INTERVALS = 2
FLAT_RATIO = 1.2
# Enough that a stall of a few seconds queues no request behind busy threads.
WORKERS = 64
CALL_TIMEOUT_SECONDS = 10.0
# Below uvicorn's 5 s keep-alive: the client drops an idle connection before the server
# closes it under a request in flight.
KEEPALIVE_SECONDS = 3.0
BEHIND_SECONDS = 0.1
SETTLE_TRIES = 3
CAUGHT_UP_TIMEOUT_SECONDS = 60.0
RECONCILE_TIMEOUT_SECONDS = 300.0

DEPOSIT, BALANCE, HISTORY = "deposit", "balance", "history"
KINDS = (DEPOSIT, BALANCE, HISTORY)
# Six deposits, three balance reads and one history read in every ten requests, spread out.
MIX = (DEPOSIT, BALANCE, DEPOSIT, DEPOSIT, HISTORY, DEPOSIT, BALANCE, DEPOSIT, BALANCE, DEPOSIT)
WALLETS = tuple(f"soak-{index:02d}" for index in range(16))
ZONES = (ZoneInfo("UTC"), ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata"))
# Deposits happened up to this long before they are sent.
DEPOSIT_AGE = timedelta(minutes=1)

CLIENT = "benchmark client (this process)"
# The roles of benchmarks/stack.py, short for the interval table's columns.
COLUMNS = {
    "gateway": "gateway",
    "command service": "command",
    "query service": "query",
    "updater": "updater",
    "DynamoDB Local (java)": "DynamoDB Local",
    POSTGRES: "PostgreSQL",
}
PYTHON_ROLES = (SUPERVISOR, "gateway", "command service", "query service", "updater")


def run_soak_benchmark(minutes: float = DEFAULT_MINUTES, rate: float = DEFAULT_RATE) -> int:
    """Runs the soak and prints it as markdown; the exit code as the module says."""
    return run_on_stack("soak", lambda: _soak(minutes * 60, rate))


def _progress(message: str) -> None:
    print(f"wallet bench soak: {message}", file=sys.stderr, flush=True)


def _out(text: str = "") -> None:
    print(text, flush=True)


# --- the requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    kind: str
    wallet: str
    due: float
    """perf_counter() when the pace says it is to be sent."""
    path: str
    params: dict[str, str] | None = None
    body: dict[str, str] | None = None
    key: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: str
    """The HTTP status, or the name of the exception that stood in for an answer."""
    ok: bool
    seconds: float
    """From sending to the whole answer."""
    behind: float
    """How long after it was due it was sent."""
    as_of_age: float | None = None
    """A balance answer's age of as_of, in seconds, when it had one."""


class Load:
    """Builds the paced requests (in the pacing thread, from one seeded random source),
    sends them (in the pool's threads, one keep-alive httpx.Client each) and keeps what
    came back: outcomes for the interval rows, and the deposits acknowledged or not."""

    def __init__(self, gateway_url: str, auth: BenchAuth, run_id: str) -> None:
        self.outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.acknowledged: dict[str, Decimal] = dict.fromkeys(WALLETS, Decimal(0))
        self.deposits_acknowledged = 0
        self.replays = 0
        self.unknown: list[Request] = []
        """Deposits answered otherwise or not at all: recorded or not, nobody knows yet."""
        self._gateway_url = gateway_url
        self._auth = auth
        self._run_id = run_id
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    def request(self, index: int, due: float) -> Request:
        kind, wallet = MIX[index % len(MIX)], self._rng.choice(WALLETS)
        base = f"/v1/wallets/{wallet}"
        if kind == DEPOSIT:
            zone = self._rng.choice(ZONES)
            occurred_at = datetime.now(zone) - DEPOSIT_AGE * self._rng.random()
            amount = Decimal(self._rng.randint(1, 10_000)).scaleb(-2)
            return Request(
                kind,
                wallet,
                due,
                f"{base}/records",
                body={
                    "datetime": occurred_at.isoformat(timespec="milliseconds"),
                    "amount": format_amount(amount),
                },
                key=f"soak-{self._run_id}-{index}",
                amount=amount,
            )
        if kind == BALANCE:
            return Request(kind, wallet, due, f"{base}/balance")
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        params = {
            "start": _utc_text(end - timedelta(hours=23)),
            "end": _utc_text(end),
            "tz": self._rng.choice(ZONES).key,
        }
        return Request(kind, wallet, due, f"{base}/history", params=params)

    def send(self, request: Request) -> None:
        """Sends `request` and files what came back; never raises."""
        client = self._client()
        sent = time.perf_counter()
        behind = sent - request.due
        try:
            response = self._exchange(client, request)
        except httpx.HTTPError as error:
            self._file(request, Outcome(request.kind, type(error).__name__, False, 0.0, behind))
            return
        seconds = time.perf_counter() - sent
        status = response.status_code
        ok = status in ((200, 201) if request.kind == DEPOSIT else (200,))
        age = _as_of_age(response) if ok and request.kind == BALANCE else None
        self._file(request, Outcome(request.kind, str(status), ok, seconds, behind, age))

    def resend(self, request: Request) -> str:
        """`request` sent again as it was (same Idempotency-Key): its status, or the name
        of the exception; an acknowledged deposit is counted."""
        try:
            response = self._exchange(self._client(), request)
        except httpx.HTTPError as error:
            return type(error).__name__
        if response.status_code in (200, 201):
            self._acknowledge(request, replayed=response.status_code == 200)
        return str(response.status_code)

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self._gateway_url,
                headers=self._auth.headers,
                timeout=CALL_TIMEOUT_SECONDS,
                limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    @staticmethod
    def _exchange(client: httpx.Client, request: Request) -> httpx.Response:
        if request.kind == DEPOSIT:
            assert request.key is not None
            return client.post(
                request.path, json=request.body, headers={"Idempotency-Key": request.key}
            )
        return client.get(request.path, params=request.params)

    def _file(self, request: Request, outcome: Outcome) -> None:
        self.outcomes.put(outcome)
        if request.kind != DEPOSIT:
            return
        if outcome.ok:
            self._acknowledge(request, replayed=outcome.status == "200")
        else:
            with self._lock:
                self.unknown.append(request)

    def _acknowledge(self, request: Request, *, replayed: bool) -> None:
        assert request.amount is not None
        with self._lock:
            self.acknowledged[request.wallet] += request.amount
            self.deposits_acknowledged += 1
            self.replays += replayed


def _utc_text(instant: datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%SZ}"


def _as_of_age(response: httpx.Response) -> float | None:
    as_of = response.json().get("as_of")
    if as_of is None:
        return None
    return time.time() - datetime.fromisoformat(as_of).timestamp()


# --- the intervals -----------------------------------------------------------------------


@dataclass
class Samples:
    """What the run saw: every outcome, and the RSS of each role at ready (0 s) and at the
    end of each interval."""

    outcomes: list[Outcome] = field(default_factory=list)
    rss: list[tuple[float, dict[str, int]]] = field(default_factory=list)


INTERVAL_HEADERS = [
    "t s",
    *(f"{kind}/s" for kind in KINDS),
    "errors",
    *(f"{kind} p50/p99 ms" for kind in KINDS),
    "as_of age p50/max s",
    "sent late",
    "load avg",
    *(f"{column} MB" for column in COLUMNS.values()),
]


def _interval_row(
    elapsed: float, seconds: float, outcomes: Sequence[Outcome], rss: dict[str, int]
) -> list[str]:
    ages = [o.as_of_age for o in outcomes if o.as_of_age is not None]
    return [
        f"{elapsed:.0f}",
        *(f"{sum(o.ok for o in outcomes if o.kind == kind) / seconds:.1f}" for kind in KINDS),
        _errors_text(outcomes),
        *(_latency_text([o.seconds for o in outcomes if o.ok and o.kind == k]) for k in KINDS),
        f"{percentile(ages, 50):.2f}/{max(ages):.2f}" if ages else "n/a",
        str(sum(o.behind > BEHIND_SECONDS for o in outcomes)),
        f"{os.getloadavg()[0]:.1f}",
        *(_mb(rss[role]) if role in rss else "-" for role in COLUMNS),
    ]


def _errors_text(outcomes: Sequence[Outcome]) -> str:
    errors = Counter(f"{o.kind} {o.status}" for o in outcomes if not o.ok)
    return ", ".join(f"{what} x{count}" for what, count in sorted(errors.items())) or "0"


def _latency_text(seconds: list[float]) -> str:
    if not seconds:
        return "n/a"
    return f"{milliseconds(percentile(seconds, 50))}/{milliseconds(percentile(seconds, 99))}"


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f}"


def _drained(outcomes: "queue.SimpleQueue[Outcome]") -> list[Outcome]:
    drained = []
    while True:
        try:
            drained.append(outcomes.get_nowait())
        except queue.Empty:
            return drained


def _drive(
    load: Load, started: RunningStack, stack: Stack, log: Path, seconds: float, rate: float
) -> Samples:
    """Sends the paced requests for `seconds`, printing a row at the end of each interval;
    then waits for the answers still on their way."""
    interval, rows = _intervals(seconds)
    samples, pid, pgdata = Samples(), started.process.pid, stack.pgdata
    samples.rss.append((0.0, rss_by_role(pid, pgdata)))
    _out(markdown_table(INTERVAL_HEADERS, []))
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="soak-client") as pool:
        start = time.perf_counter()
        row, index, last_row_at = 1, 0, start
        while row <= rows:
            now, row_at = time.perf_counter(), start + row * interval
            if now >= row_at:
                if started.process.poll() is not None:
                    raise StackFailed(
                        f"wallet dev exited with {started.process.returncode} during the soak "
                        f"(0: it was sent SIGTERM or SIGINT): {tail(log)}"
                    )
                outcomes = _drained(load.outcomes)
                samples.outcomes += outcomes
                rss = rss_by_role(pid, pgdata)
                samples.rss.append((now - start, rss))
                cells = _interval_row(now - start, now - last_row_at, outcomes, rss)
                _out("| " + " | ".join(cells) + " |")
                row, last_row_at = row + 1, now
            elif (due := start + index / rate) <= now:
                pool.submit(load.send, load.request(index, due))
                index += 1
            else:
                time.sleep(min(due, row_at) - now)
    samples.outcomes += _drained(load.outcomes)
    return samples


def _intervals(seconds: float) -> tuple[float, int]:
    """The seconds between rows and how many rows: INTERVALS rows unless that would make
    them shorter than MIN_INTERVAL_SECONDS."""
    interval = max(seconds / INTERVALS, MIN_INTERVAL_SECONDS)
    return interval, max(1, round(seconds / interval))


# --- the report ----------------------------------------------------------------------------


def _totals_table(outcomes: Sequence[Outcome], seconds: float) -> str:
    rows = []
    for kind in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        latencies = [o.seconds for o in mine if o.ok]
        rows.append(
            [
                kind,
                len(mine),
                sum(o.ok for o in mine),
                len(mine) - sum(o.ok for o in mine),
                f"{sum(o.ok for o in mine) / seconds:.1f}",
                _latency_text(latencies).replace("/", " / "),
            ]
        )
    headers = ["kind", "sent", "as expected", "errors", "per s", "p50 / p99 ms"]
    return markdown_table(headers, rows)


def _growth_mb_per_minute(points: Sequence[tuple[float, int]]) -> float | None:
    """The least-squares slope of RSS over time, MB per minute; None under 3 points."""
    if len(points) < 3:
        return None
    slope = statistics.linear_regression([t for t, _ in points], [b for _, b in points]).slope
    return slope * 60 / 1e6


@dataclass(frozen=True)
class MemoryVerdict:
    table: str
    flat: bool
    grown: list[str]


def _memory(samples: Samples, cpu: dict[str, float], seconds: float) -> MemoryVerdict:
    at_ready = samples.rss[0][1]
    warm_index = min(WARMUP_INTERVALS, len(samples.rss) - 1)
    warmed, at_end = samples.rss[warm_index][1], samples.rss[-1][1]
    rows, grown = [], []
    for role in sorted(set(at_ready) | set(at_end)):
        start, warm, end = at_ready.get(role, 0), warmed.get(role, 0), at_end.get(role, 0)
        growth = _growth_mb_per_minute(
            [(t, rss[role]) for t, rss in samples.rss[warm_index:] if role in rss]
        )
        if role in PYTHON_ROLES:
            flat = bool(warm) and end <= FLAT_RATIO * warm
            verdict = "yes" if flat else "NO"
            if not flat:
                grown.append(role)
        else:
            verdict = "not judged"
        rows.append(
            [
                role,
                _mb(start),
                _mb(warm),
                _mb(end),
                f"{end / start:.2f}" if start else "n/a",
                f"{end / warm:.2f}" if warm else "n/a",
                f"{growth:+.1f}" if growth is not None else "n/a",
                f"{cpu.get(role, 0.0) / seconds:.0%}",
                verdict,
            ]
        )
    headers = [
        "process",
        "RSS at ready MB",
        "after warm-up MB",
        "at end MB",
        "end / ready",
        "end / warm-up",
        "MB/min after warm-up",
        "CPU (of one core)",
        "flat",
    ]
    return MemoryVerdict(markdown_table(headers, rows), not grown, grown)


def _cpu_by_role(stack_pid: int, pgdata: Path | None) -> dict[str, float]:
    cpu = {
        role: cpu_seconds(processes)
        for role, processes in stack_processes(stack_pid, pgdata).items()
    }
    cpu[CLIENT] = cpu_seconds([psutil.Process()])
    return cpu


def _setup_text(stack: Stack, seconds: float, rate: float, ready: float) -> str:
    interval, _ = _intervals(seconds)
    database = (
        "a new database on the PostgreSQL server of DATABASE_URL "
        f"({make_url(stack.database_url).render_as_string(hide_password=True)})"
        if stack.database_url is not None
        else "the stack's embedded PostgreSQL"
    )
    return (
        f"`wallet dev` started by the benchmark on free ports in a scratch data folder "
        f"(ready in {ready:.1f} s), read model in {database}. {os.cpu_count()} CPUs shared "
        f"with the benchmark's client and other work; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the start. {AUTH_NOTE}\n\n"
        f"Load: {rate:g} requests/s for {seconds / 60:g} min, paced (request i is due i/rate "
        f"s after the start, whatever the answers before it) and sent by up to {WORKERS} "
        f"client threads with a keep-alive connection each. Of every {len(MIX)} requests: "
        f"{MIX.count(DEPOSIT)} POST /records (a new Idempotency-Key each, 0.01 to 100.00, "
        f"happened up to {DEPOSIT_AGE.seconds} s before, in one of {len(ZONES)} offsets), "
        f"{MIX.count(BALANCE)} GET /balance, {MIX.count(HISTORY)} GET /history of the last "
        f"24 hours in one of {len(ZONES)} zones; over {len(WALLETS)} wallets. The updater "
        "follows the stream (`wallet update --follow`).\n\n"
        f"One row every {interval:.0f} s: requests/s answered as expected (201 or 200 for a "
        "deposit, 200 for a read), errors as `kind status` (or the exception that stood in "
        "for an answer), latency of the expected answers, the age of as_of in the balance "
        "answers (the updater's last finished pass: how far the read model trails), how many "
        f"requests were sent more than {BEHIND_SECONDS * 1000:.0f} ms after they were due "
        "(the client fell behind), the machine's 1-minute load average, and the RSS of each "
        "process (PostgreSQL: postmaster plus backends, shared buffers counted once per "
        "process)."
    )


def _rss_at_ready_table(rss: dict[str, int]) -> str:
    return markdown_table(
        ["process", "RSS at ready MB"], [[role, _mb(size)] for role, size in sorted(rss.items())]
    )


# --- correctness -------------------------------------------------------------------------


@dataclass(frozen=True)
class Correctness:
    lines: list[str]
    correct: bool


def _settle(load: Load) -> list[str]:
    """Sends each deposit of unknown outcome again with its key until it is acknowledged
    (201: recorded only now; 200: it had been recorded) or SETTLE_TRIES tries fail."""
    unknown, load.unknown = load.unknown, []
    statuses: Counter[str] = Counter()
    for request in unknown:
        for _ in range(SETTLE_TRIES):
            status = load.resend(request)
            if status in ("200", "201"):
                break
        else:
            load.unknown.append(request)
        statuses[status] += 1
    if not unknown:
        return ["Deposits of unknown outcome: none."]
    answered = ", ".join(f"{status} x{count}" for status, count in sorted(statuses.items()))
    return [
        f"Deposits of unknown outcome sent again with their Idempotency-Key: {len(unknown)}; "
        f"last answers {answered} (200: it had been recorded, 201: recorded only now); "
        f"still unknown: {len(load.unknown)}."
    ]


def _balances(client: httpx.Client) -> dict[str, Decimal | None]:
    """Each wallet's balance from GET /balance; None where it did not answer 200."""
    balances: dict[str, Decimal | None] = {}
    for wallet in WALLETS:
        try:
            response = client.get(f"/v1/wallets/{wallet}/balance")
        except httpx.HTTPError:
            balances[wallet] = None
            continue
        balances[wallet] = Decimal(response.json()["balance"]) if response.is_success else None
    return balances


def _caught_up(load: Load, stack: Stack) -> tuple[dict[str, Decimal | None], float]:
    """The balances once they equal the acknowledged sums, or as they are after
    CAUGHT_UP_TIMEOUT_SECONDS; and the seconds it took."""
    started = time.perf_counter()
    with httpx.Client(
        base_url=stack.gateway_url, headers=stack.auth.headers, timeout=CALL_TIMEOUT_SECONDS
    ) as client:
        while True:
            balances = _balances(client)
            waited = time.perf_counter() - started
            if balances == load.acknowledged or waited > CAUGHT_UP_TIMEOUT_SECONDS:
                return balances, waited
            time.sleep(0.2)


def _reconcile(stack: Stack, database_url: str, logs: Path) -> tuple[int, str]:
    """`wallet reconcile --records` against the stack's table and read model: its exit code
    and its output."""
    env = child_env(
        {
            **LOCAL_AWS_ENV,
            "AWS_ENDPOINT_URL_DYNAMODB": stack.dynamodb_endpoint,
            "DATABASE_URL": database_url,
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "wallet_cli", "reconcile", "--records"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=RECONCILE_TIMEOUT_SECONDS,
        check=False,
    )
    (logs / "reconcile.log").write_text(result.stdout + result.stderr)
    output = result.stdout.strip() or result.stderr.strip()[-2000:]
    return result.returncode, output


def _correctness(load: Load, stack: Stack, database_url: str, logs: Path) -> Correctness:
    lines = _settle(load)
    balances, waited = _caught_up(load, stack)
    total = sum(load.acknowledged.values(), Decimal(0))
    equal = balances == load.acknowledged
    lines.append(
        f"Acknowledged deposits: {load.deposits_acknowledged:,} ({load.replays} of them as "
        f"replays), Σ {total} over {len(WALLETS)} wallets. GET /balance of every wallet "
        f"{'equals' if equal else 'does NOT equal'} its Σ of acknowledged deposits"
        f"{f' ({waited:.1f} s after the load stopped)' if equal else f' after {waited:.0f} s'}."
    )
    lines += [
        f"- {wallet}: balance {balances[wallet]}, acknowledged {expected}"
        for wallet, expected in load.acknowledged.items()
        if balances[wallet] != expected
    ]
    code, output = _reconcile(stack, database_url, logs)
    lines.append(f"`wallet reconcile --records` exited {code}:\n\n```\n{output}\n```")
    return Correctness(lines, equal and code == 0 and not load.unknown)


# --- one run -------------------------------------------------------------------------------


def _soak(seconds: float, rate: float) -> int:
    auth = new_bench_auth(ttl=timedelta(seconds=seconds) + timedelta(hours=1))
    with (
        tempfile.TemporaryDirectory(prefix="wallet-bench-soak-") as scratch,
        stack_database(DatabaseSettings().database_url, "wallet_bench_soak") as database_url,
    ):
        stack = new_stack(Path(scratch) / "dev", database_url, auth)
        log = Path(scratch) / "dev.log"
        _progress(f"starting wallet dev in {stack.dev_dir}")
        with running(stack, log) as started:
            pid = started.process.pid
            _out("## wallet bench soak\n")
            _out(_setup_text(stack, seconds, rate, started.ready_seconds) + "\n")
            _out(_rss_at_ready_table(rss_by_role(pid, stack.pgdata)) + "\n")
            _progress(f"{rate:g} requests/s for {seconds / 60:g} min")
            load = Load(stack.gateway_url, auth, uuid.uuid4().hex[:8])
            try:
                cpu_before = _cpu_by_role(pid, stack.pgdata)
                load_started = time.perf_counter()
                samples = _drive(load, started, stack, log, seconds, rate)
                load_seconds = time.perf_counter() - load_started
                cpu = {
                    role: spent - cpu_before.get(role, 0.0)
                    for role, spent in _cpu_by_role(pid, stack.pgdata).items()
                }
                _report_load(samples, load_seconds, rate, cpu)
                _progress("load stopped; checking every deposit")
                correctness = _correctness(load, stack, read_model_url(stack, log), Path(scratch))
            finally:
                load.close()
            if started.process.poll() is not None:
                raise StackFailed(f"wallet dev exited during the soak: {tail(log)}")
        _out("### Correctness\n")
        _out("\n\n".join(correctness.lines) + "\n")
        _out(f"Correct: {'yes' if correctness.correct else 'NO'}.")
    return 0 if correctness.correct else 1


def _report_load(samples: Samples, seconds: float, rate: float, cpu: dict[str, float]) -> None:
    outcomes = samples.outcomes
    behind = [o.behind for o in outcomes]
    late = sum(b > BEHIND_SECONDS for b in behind)
    _out()
    _out("### Whole run\n")
    _out(_totals_table(outcomes, seconds) + "\n")
    _out(
        f"{len(outcomes):,} requests completed in {seconds:.0f} s: {len(outcomes) / seconds:.1f}"
        f"/s against {rate:g}/s paced; {late} sent more than {BEHIND_SECONDS * 1000:.0f} ms "
        f"after they were due (at most {max(behind, default=0.0) * 1000:.0f} ms): "
        f"{'the client kept the pace' if not late else 'the client fell behind at times'}.\n"
    )
    ages = [o.as_of_age for o in outcomes if o.as_of_age is not None]
    if ages:
        _out(
            f"as_of age in the balance answers over the run: p50 {percentile(ages, 50):.2f} s, "
            f"p99 {percentile(ages, 99):.2f} s, max {max(ages):.2f} s (updater interval "
            f"{UpdaterSettings().updater_interval_seconds:g} s).\n"
        )
    memory = _memory(samples, cpu, seconds)
    _out("### Memory\n")
    _out(memory.table + "\n")
    warm_seconds = samples.rss[min(WARMUP_INTERVALS, len(samples.rss) - 1)][0]
    _out(
        f"Flat: a Python process's RSS at the end is at most {FLAT_RATIO:g}x its RSS after "
        f"warm-up (the first {WARMUP_INTERVALS} intervals, {warm_seconds:.0f} s of load). "
        "DynamoDB Local (a JVM, whose heap grows towards its own limit) and PostgreSQL "
        "(shared buffers counted once per backend that touched them) are shown, not judged. "
        "MB/min: least-squares slope of the samples from the warm-up on. CPU: seconds used "
        "during the load per second of load.\n"
    )
    _out(f"The benchmark's client used {cpu.get(CLIENT, 0.0) / seconds:.0%} of one core.\n")
    if memory.flat:
        _out(f"Memory stayed flat: yes (every Python process within {FLAT_RATIO:g}x).\n")
    else:
        _out(f"Memory stayed flat: NO ({', '.join(memory.grown)} grew beyond {FLAT_RATIO:g}x).\n")
