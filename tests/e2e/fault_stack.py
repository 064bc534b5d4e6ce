"""The fault tests' stack and load: every component its own process on a fixed port, so a
test can kill or stop one alone and start it again where the others expect it; an HTTP
deposit load whose every attempt is remembered; and the checks each fault test ends with.

Its fixtures are in tests/e2e/fault_fixtures.py, which test modules load as a plugin.

The stack: DynamoDB Local (the test's own when it is to be killed), PostgreSQL (a private
server when it is to be restarted), `wallet serve command`, `wallet serve query`,
`wallet update --follow` and `wallet serve gateway`, all from tests/e2e/processes.py's
WalletProcess and child_env.
"""

import asyncio
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import httpx
import psycopg
import pytest

from harness.dev_stack import wait_until_ready
from harness.processes import tail, wallet_command
from harness.waiting import wait_until
from services.platform.settings import PROJECT_ROOT
from services.updater.projection_store import UPDATER_LOCK_KEY
from tests.auth_support import bearer_header
from tests.certificates import self_signed_certificate
from tests.e2e.processes import (
    Finished,
    TableContents,
    WalletProcess,
    child_env,
    local_client,
    scan_table,
)
from tests.e2e.stack import (
    CLIENT_KEEPALIVE_EXPIRY,
    PROBLEM_JSON,
    record_json,
    wait_for_projection,
)
from tests.history_oracle import exact_sum
from wallet_cli.local.dynamodb_local import DynamoDBLocal, free_port

# Bounds for waits on a small shared machine; they time nothing.
GRACE_SECONDS = 5.0
GATEWAY_DEADLINE = 5.0
# A request still unanswered this long after it was sent hangs: the gateway gives up on its
# backend after GATEWAY_DEADLINE, so an answer is due well before.
HTTP_TIMEOUT = GATEWAY_DEADLINE + 10.0
READY_TIMEOUT = 90.0
RUN_TIMEOUT = 120.0
WAIT_TIMEOUT = 60.0
UPDATER_INTERVAL_SECONDS = "0.2"
# Refusals that ask the client to send the same deposit again: 503, the command service
# could not take it now; 504, the gateway stopped waiting for it (a loaded machine, a store
# that answers slowly, or not at all within the command service's DynamoDB timeouts and
# retries), which the command service may still have stored: the retry then replays it.
RETRYABLE_STATUSES = (503, 504)
# Of those, the ones the gateway sends with a Retry-After (gateway/problems.py).
RETRY_AFTER_STATUSES = (503, 504)
# Deposits are in the past (never "in the future") and span two hours of several buckets.
FIRST_HOUR = datetime(2023, 6, 1, 8, tzinfo=UTC)
HOURS = 2


@dataclass
class FaultStack:
    """The services of one test, each a separate process on a port fixed for the test's
    life, so a restarted process is found where the others look for it."""

    dynamodb: DynamoDBLocal
    table_name: str
    database_url: str
    log_dir: Path
    command_port: int = field(default_factory=free_port)
    query_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    command: WalletProcess | None = None
    query: WalletProcess | None = None
    updater: WalletProcess | None = None
    gateway: WalletProcess | None = None
    started: list[WalletProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self) -> dict[str, str]:
        return child_env(
            **self.dynamodb.client_env(),
            WALLET_TABLE_NAME=self.table_name,
            DATABASE_URL=self.database_url,
            WALLET_LISTEN_HOST="127.0.0.1",
            WALLET_COMMAND_PORT=str(self.command_port),
            WALLET_QUERY_PORT=str(self.query_port),
            WALLET_GATEWAY_PORT=str(self.gateway_port),
            WALLET_COMMAND_ADDRESS=f"127.0.0.1:{self.command_port}",
            WALLET_QUERY_ADDRESS=f"127.0.0.1:{self.query_port}",
            WALLET_UPDATER_INTERVAL_SECONDS=UPDATER_INTERVAL_SECONDS,
            WALLET_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
            WALLET_GATEWAY_DEADLINE_SECONDS=str(GATEWAY_DEADLINE),
        )

    def _launch(self, args: list[str], port: int) -> WalletProcess:
        process = WalletProcess.start(args, self.env(), command_port=port, log_dir=self.log_dir)
        self.started.append(process)
        return process

    def launch_command(self) -> WalletProcess:
        self.command = self._launch(["serve", "command"], self.command_port)
        return self.command

    def launch_query(self) -> WalletProcess:
        self.query = self._launch(["serve", "query"], self.query_port)
        return self.query

    def launch_gateway(self) -> WalletProcess:
        self.gateway = self._launch(["serve", "gateway"], self.gateway_port)
        return self.gateway

    def start_updater(self) -> WalletProcess:
        """`wallet update --follow` (no port: it only reads the stream and writes)."""
        self.updater = self._launch(["update", "--follow"], 0)
        return self.updater

    def start_command(self) -> WalletProcess:
        self.launch_command().wait_until_serving(READY_TIMEOUT)
        assert self.command is not None
        return self.command

    def start_gateway(self) -> WalletProcess:
        gateway = self.launch_gateway()
        self.wait_until_ready()
        return gateway

    def start_all(self) -> None:
        """Starts the services together (they start in parallel) and returns once the
        gateway is ready, i.e. both gRPC services answer their health checks."""
        command, query = self.launch_command(), self.launch_query()
        self.start_updater()
        self.launch_gateway()
        command.wait_until_serving(READY_TIMEOUT)
        query.wait_until_serving(READY_TIMEOUT)
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        """Polls GET /readyz until 200; fails early when the gateway exits."""
        gateway = self.gateway
        assert gateway is not None
        wait_until_ready(
            gateway.process,
            self.base_url,
            READY_TIMEOUT,
            logs=lambda: tail(gateway.stderr_path),
            request_timeout=5,
        )

    def client(self) -> httpx.Client:
        """An HTTP client on the gateway with a token for every wallet."""
        return httpx.Client(base_url=self.base_url, timeout=HTTP_TIMEOUT, headers=bearer_header())

    def run(self, *args: str) -> Finished:
        """`wallet <args>` against this stack's table and database, to its end."""
        completed = subprocess.run(
            wallet_command(*args),
            env=self.env(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return Finished(
            completed.returncode,
            completed.stdout.decode(errors="replace"),
            completed.stderr.decode(errors="replace"),
        )

    def reconcile(self) -> Finished:
        """`wallet reconcile --records`: the read model against the aggregates, and the
        aggregates against their records."""
        return self.run("reconcile", "--records")

    def contents(self) -> TableContents:
        return scan_table(local_client(self.dynamodb), self.table_name)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop(timeout=GRACE_SECONDS + 10)


def sigkill(process: WalletProcess) -> None:
    """SIGKILL, waits for the exit, releases its log files."""
    process.process.kill()
    process.process.wait()
    process.stop()


def sigterm(process: WalletProcess, timeout: float = GRACE_SECONDS + 15) -> int:
    """SIGTERM and the exit code, waiting at most `timeout` (then it fails: a hang)."""
    process.process.send_signal(signal.SIGTERM)
    try:
        code = process.process.wait(timeout)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"{process.process.args!r} still running {timeout} s after SIGTERM:\n"
            f"{tail(process.stderr_path)}"
        ) from error
    finally:
        process.stop()
    return code


StartFaultStack = Callable[[DynamoDBLocal, str, str], FaultStack]


def updater_lock_holders(database_url: str) -> int:
    """Sessions holding the updater's lock on this database (a SIGKILLed updater's goes
    when PostgreSQL notices its connection closed). pg_locks spans the whole server, where
    other tests' updaters hold the same lock on their own databases."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %s",
            (UPDATER_LOCK_KEY,),
        ).fetchone()
    assert row is not None
    count: int = row[0]
    return count


# --- a PostgreSQL server of the test's own ------------------------------------------------


def _postgres_with_tls() -> Path:
    """The machine's PostgreSQL binaries: pgserver's are built without SSL."""
    if shutil.which("pg_config") is not None:
        shown = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        bindir = Path(shown.stdout.strip())
        if shown.returncode == 0 and (bindir / "postgres").is_file():
            return bindir
    pytest.skip("TLS needs the machine's PostgreSQL server (pg_config --bindir): pgserver has none")


class PrivatePostgres:
    """A PostgreSQL cluster of one test, from pgserver's binaries, on a fixed TCP port, so it
    can be stopped and started again where its clients expect it (the machine's shared
    server must never be restarted). Runs as the `pgserver` user when the tests run as
    root, as pgserver itself does (PostgreSQL refuses to run as root)."""

    def __init__(self, *, tls: bool = False) -> None:
        """With `tls`, the server also accepts TLS connections (a self-signed certificate),
        as clients that insist on sslmode=require need."""
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir, which warns without XDG_RUNTIME_DIR.
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = _postgres_with_tls() if tls else POSTGRES_BIN_PATH
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="wallet-fault-pg-"))
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self.user: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._tls = tls
        if os.geteuid() == 0:
            from pgserver.utils import ensure_user_exists

            self.user = "pgserver"
            ensure_user_exists(self.user)
            shutil.chown(self.data_dir, self.user, self.user)

    def initdb(self) -> None:
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
            ],
            user=self.user,
            capture_output=True,
            check=True,
            timeout=RUN_TIMEOUT,
        )
        if self._tls:
            certificate, key = self_signed_certificate("127.0.0.1")
            for name, content in (("server.crt", certificate), ("server.key", key)):
                path = self.data_dir / name
                path.write_bytes(content)
                path.chmod(0o600)  # PostgreSQL refuses a key others can read
                if self.user is not None:
                    shutil.chown(path, self.user, self.user)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Starts the server (after a crash: with recovery) and waits until it answers."""
        assert self._process is None
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.data_dir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=100",
                    "-c",
                    f"ssl={'on' if self._tls else 'off'}",
                ],
                user=self.user,
                stdout=log,
                stderr=log,
            )

        def answers() -> bool:
            assert self._process is not None
            assert self._process.poll() is None, f"postgres exited:\n{tail(self.log_path)}"
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        wait_until(answers, lambda: f"postgres not up:\n{tail(self.log_path)}", WAIT_TIMEOUT)

    def stop(self, mode: Literal["immediate", "fast"] = "immediate") -> None:
        """Stops the server: "immediate" (SIGQUIT) ends every backend at once, as a crash
        would, and the next start recovers; "fast" (SIGINT) shuts down cleanly."""
        process = self._process
        if process is None:
            return
        process.send_signal(signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        try:
            process.wait(WAIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def remove(self) -> None:
        self.stop("fast")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


# --- the deposit load ---------------------------------------------------------------------


@dataclass(frozen=True)
class Deposit:
    wallet_id: str
    key: str
    occurred_at: datetime
    amount: Decimal

    def content(self) -> str:
        return record_json(self.occurred_at.isoformat(), f"{self.amount:f}")


def deposits(
    prefix: str, wallets: list[str], seed: int, *, bucket_each: bool = False
) -> Iterator[Deposit]:
    """Endless deposits with keys of their own, round the wallets, with amounts of up to 18
    decimals (exact sums are checked). They fall in FIRST_HOUR's HOURS hours, so many share
    an aggregate item; with `bucket_each`, deposit n falls in the n-th 15-minute bucket
    after FIRST_HOUR instead, an aggregate item of its own that no later write updates."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    number = 0
    while True:
        if bucket_each:
            offset = timedelta(minutes=15 * number, seconds=rng.randrange(15 * 60))
        else:
            offset = timedelta(seconds=rng.randrange(HOURS * 3600))
        offset += timedelta(microseconds=rng.randrange(10**6))
        amount = Decimal(rng.randrange(1, 10**4)) + Decimal(rng.randrange(10**18)).scaleb(-18)
        yield Deposit(
            wallets[number % len(wallets)], f"{prefix}-{run}-{number}", FIRST_HOUR + offset, amount
        )
        number += 1


@dataclass(frozen=True)
class Attempt:
    """One POST of a deposit and what came back: an HTTP status, or the transport error
    that took its place (`status` None)."""

    deposit: Deposit
    started: float
    ended: float
    status: int | None
    error: str | None = None
    content_type: str = ""
    retry_after: str | None = None
    replayed: str | None = None
    amount: Decimal | None = None
    problem_status: int | None = None
    body: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status in (200, 201)

    @property
    def clean_refusal(self) -> bool:
        """503 as application/problem+json with Retry-After: "not now, retry"."""
        return self.status == 503 and self.retryable_refusal

    @property
    def retryable_refusal(self) -> bool:
        """503 or 504 as application/problem+json (with Retry-After where the gateway sends
        one): "not now, retry with the same key"."""
        return (
            self.status in RETRYABLE_STATUSES
            and self.content_type == PROBLEM_JSON
            and self.problem_status == self.status
            and (self.retry_after is not None or self.status not in RETRY_AFTER_STATUSES)
        )

    def describe(self) -> str:
        what = f"{self.status}" if self.status is not None else f"no answer ({self.error})"
        return (
            f"{self.deposit.key} [{self.started:.2f}, {self.ended:.2f}]: {what} {self.body[:200]}"
        )


OnFailure = Literal["retry", "stop"]


class DepositLoad:
    """`clients` concurrent HTTP clients posting deposits through the gateway, each with
    its own Idempotency-Key, in a thread of their own so the test can break things
    meanwhile. On a failed attempt a client either retries the same deposit (same key)
    after the answer's Retry-After, or stops ("stop"). finish() lets each client end after
    its current deposit."""

    def __init__(
        self,
        base_url: str,
        jobs: Iterable[Deposit],
        *,
        clients: int,
        on_failure: OnFailure,
        give_up_after: float = 90.0,
    ) -> None:
        self._base_url = base_url
        self._jobs = iter(jobs)
        self._clients = clients
        self._on_failure = on_failure
        self._give_up = time.monotonic() + give_up_after
        self._lock = threading.Lock()
        self._attempts: list[Attempt] = []
        self._finishing = threading.Event()
        self._crashed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def count(self, predicate: Callable[[Attempt], bool]) -> int:
        with self._lock:
            return sum(1 for attempt in self._attempts if predicate(attempt))

    def finish(self) -> None:
        self._finishing.set()

    def join(self, timeout: float = RUN_TIMEOUT) -> list[Attempt]:
        """Waits until every client stopped; fails if one did not, or the load crashed."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the load still runs after {timeout} s"
        if self._crashed is not None:
            raise AssertionError("the load crashed") from self._crashed
        return self.attempts()

    def _next_job(self) -> Deposit | None:
        if self._finishing.is_set() or time.monotonic() > self._give_up:
            return None
        with self._lock:
            return next(self._jobs, None)

    def _run(self) -> None:
        try:
            asyncio.run(self._all_clients())
        except BaseException as error:  # surfaced by join()
            self._crashed = error

    async def _all_clients(self) -> None:
        limits = httpx.Limits(
            max_connections=self._clients,
            max_keepalive_connections=self._clients,
            keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY,
        )
        async with httpx.AsyncClient(
            base_url=self._base_url, timeout=HTTP_TIMEOUT, limits=limits, headers=bearer_header()
        ) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self._clients)))

    async def _client(self, client: httpx.AsyncClient) -> None:
        job = self._next_job()
        while job is not None:
            attempt = await post_deposit(client, job)
            with self._lock:
                self._attempts.append(attempt)
            if attempt.acknowledged:
                job = self._next_job()
            elif self._on_failure == "stop" or time.monotonic() > self._give_up:
                return
            else:
                await asyncio.sleep(retry_delay(attempt))


def retry_delay(attempt: Attempt) -> float:
    """What the answer asks (Retry-After, capped for the test's sake), else a short pause."""
    if attempt.retry_after is not None and attempt.retry_after.isdigit():
        return min(float(attempt.retry_after), 1.0)
    return 0.2


async def post_deposit(client: httpx.AsyncClient, deposit: Deposit) -> Attempt:
    started = time.monotonic()
    try:
        response = await client.post(
            f"/v1/wallets/{deposit.wallet_id}/records",
            content=deposit.content(),
            headers={"Content-Type": "application/json", "Idempotency-Key": deposit.key},
        )
    except httpx.TransportError as error:
        return Attempt(deposit, started, time.monotonic(), None, error=type(error).__name__)
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    amount = problem_status = None
    if response.status_code in (200, 201):
        amount = Decimal(response.json()["amount"])
    elif content_type == PROBLEM_JSON:
        problem_status = response.json().get("status")
    return Attempt(
        deposit,
        started,
        time.monotonic(),
        response.status_code,
        content_type=content_type,
        retry_after=response.headers.get("Retry-After"),
        replayed=response.headers.get("Idempotent-Replayed"),
        amount=amount,
        problem_status=problem_status,
        body=response.text,
    )


def post_once(base_url: str, deposit: Deposit) -> Attempt:
    """One POST of the deposit through the gateway at `base_url`, on a client of its own."""

    async def post() -> Attempt:
        async with httpx.AsyncClient(
            base_url=base_url, timeout=HTTP_TIMEOUT, headers=bearer_header()
        ) as client:
            return await post_deposit(client, deposit)

    return asyncio.run(post())


def post_until_acknowledged(
    client: httpx.Client, deposit: Deposit, timeout: float = WAIT_TIMEOUT
) -> httpx.Response:
    """Posts the deposit (same key) until 200/201; fails on anything but a retryable refusal
    (RETRYABLE_STATUSES) or a refused connection (a restarted service is not reachable at
    once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = client.post(
                f"/v1/wallets/{deposit.wallet_id}/records",
                content=deposit.content(),
                headers={"Content-Type": "application/json", "Idempotency-Key": deposit.key},
            )
        except httpx.ConnectError:
            response = None
        if response is not None and response.status_code in (200, 201):
            return response
        if response is not None:
            assert response.status_code in RETRYABLE_STATUSES, (
                deposit.key,
                response.status_code,
                response.text,
            )
        assert time.monotonic() < deadline, f"{deposit.key} not acknowledged in {timeout} s"
        time.sleep(0.2)


def by_key(attempts: Iterable[Attempt]) -> dict[str, list[Attempt]]:
    grouped: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in sorted(attempts, key=lambda each: each.started):
        grouped[attempt.deposit.key].append(attempt)
    return dict(grouped)


def assert_acknowledgements_consistent(attempts: Iterable[Attempt]) -> None:
    """Per key: every acknowledgement carries the deposit's amount, at most one says
    "created" (201), every other says "replayed", and a key first acknowledged as a replay
    had an earlier attempt that failed (the one that stored it)."""
    for key, tries in by_key(attempts).items():
        acknowledged = [attempt for attempt in tries if attempt.acknowledged]
        if not acknowledged:
            continue
        assert all(a.amount == a.deposit.amount for a in acknowledged), [
            a.describe() for a in tries
        ]
        created = [a for a in acknowledged if a.status == 201]
        assert len(created) <= 1, (key, [a.describe() for a in tries])
        assert all(a.replayed == "true" for a in acknowledged if a.status == 200), [
            a.describe() for a in tries
        ]
        if not created:
            first = acknowledged[0]
            assert any(not a.acknowledged and a.started < first.started for a in tries), (
                f"{key} replayed without an earlier attempt: {[a.describe() for a in tries]}"
            )


def acknowledged_deposits(attempts: Iterable[Attempt]) -> dict[str, Deposit]:
    return {a.deposit.key: a.deposit for a in attempts if a.acknowledged}


def assert_table_holds_exactly(
    contents: TableContents, deposits: Iterable[Deposit], attempts: Iterable[Attempt] = ()
) -> None:
    """The table's records are these deposits, each once with its amount, and every
    aggregate equals the sum of its records (by wallet here; per bucket and shard in
    `wallet reconcile --records`). `attempts` only make a failure easier to read."""
    expected = {deposit.key: deposit.amount for deposit in deposits}
    stored = contents.record_amounts()  # fails on a key stored twice
    tries = by_key(attempts)

    def show(keys: set[str]) -> list[str]:
        return [f"{key} {[t.describe() for t in tries.get(key, [])]}" for key in sorted(keys)[:5]]

    missing = expected.keys() - stored.keys()
    extra = stored.keys() - expected.keys()
    assert not missing, f"{len(missing)} deposits not stored, e.g. {show(missing)}"
    assert not extra, f"{len(extra)} deposits stored unexpectedly, e.g. {show(extra)}"
    wrong = {
        key: (stored[key], amount) for key, amount in expected.items() if stored[key] != amount
    }
    assert not wrong, f"stored amounts differ: {list(wrong.items())[:5]}"
    aggregates, records = contents.aggregate_totals(), contents.record_totals()
    assert aggregates == records, f"aggregates {aggregates} != records {records}"


def assert_reconciled(stack: FaultStack) -> None:
    """`wallet reconcile --records`, run as a process, finds no difference."""
    finished = stack.reconcile()
    assert finished.returncode == 0, finished.describe()
    assert "no difference" in finished.stdout, finished.describe()


def hours_spanned(deposits: Iterable[Deposit]) -> int:
    """Hours from FIRST_HOUR to the first hour after the last deposit."""
    last = max(deposit.occurred_at for deposit in deposits)
    return (last - FIRST_HOUR) // timedelta(hours=1) + 1


def expected_balances(deposits: Iterable[Deposit]) -> dict[str, list[Decimal]]:
    """Per wallet, the balance (all its deposits before it) at each hour from FIRST_HOUR
    to FIRST_HOUR + hours_spanned(deposits), the last being the wallet's whole balance."""
    made = list(deposits)
    hours = hours_spanned(made)
    by_wallet: dict[str, list[Deposit]] = defaultdict(list)
    for deposit in made:
        by_wallet[deposit.wallet_id].append(deposit)
    return {
        wallet_id: [
            exact_sum(d.amount for d in own if d.occurred_at < FIRST_HOUR + timedelta(hours=hour))
            for hour in range(hours + 1)
        ]
        for wallet_id, own in by_wallet.items()
    }


def read_balance(client: httpx.Client, wallet_id: str) -> httpx.Response:
    return client.get(f"/v1/wallets/{wallet_id}/balance")


def read_history(client: httpx.Client, wallet_id: str, hours: int) -> httpx.Response:
    """The wallet's history from FIRST_HOUR to `hours` later, in UTC."""
    end = FIRST_HOUR + timedelta(hours=hours)
    return client.get(
        f"/v1/wallets/{wallet_id}/history",
        params={"start": FIRST_HOUR.isoformat(), "end": end.isoformat()},
    )


def assert_read_model_equals(client: httpx.Client, deposits: Iterable[Deposit]) -> None:
    """History and balance of every wallet, through the gateway, equal the exact sums of
    the deposits. Call after the updater has caught up (wait_for_projection)."""
    made = list(deposits)
    hours = hours_spanned(made)
    for wallet_id, hourly in expected_balances(made).items():
        history = read_history(client, wallet_id, hours)
        assert history.status_code == 200, history.text
        points = [Decimal(point["balance"]) for point in history.json()["points"]]
        assert points == hourly, (wallet_id, points, hourly)
        balance = read_balance(client, wallet_id)
        assert balance.status_code == 200, balance.text
        assert Decimal(balance.json()["balance"]) == hourly[-1], (wallet_id, balance.text)


def caught_up_and_equal(client: httpx.Client, deposits: Iterable[Deposit]) -> None:
    """Waits for an updater pass that began after now, then checks the read model."""
    wait_for_projection(client, datetime.now(UTC))
    assert_read_model_equals(client, deposits)


def alive(process: WalletProcess | None) -> bool:
    return process is not None and process.process.poll() is None


def describe_exit(process: WalletProcess) -> str:
    return f"exit {process.process.returncode}:\n{tail(process.stderr_path)}"
