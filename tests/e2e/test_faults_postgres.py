"""PostgreSQL restarted under a history and balance load through the gateway.

The read model lives on a PostgreSQL server of the test's own (never the machine's shared
one), stopped in immediate mode, which ends every backend at once as a crash would, then
started again on the same port and data folder (with crash recovery). While it is down the
gateway answers 503 (problem+json, Retry-After), never 500 and never a wrong number; once it
is back the very same gateway, query service and updater processes answer 200 with the exact
balances again, and the updater projects deposits written after the restart.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import httpx

from harness.waiting import wait_until
from tests.auth_support import bearer_header
from tests.e2e.fault_stack import (
    HTTP_TIMEOUT,
    RUN_TIMEOUT,
    WAIT_TIMEOUT,
    Deposit,
    DepositLoad,
    FaultStack,
    PrivatePostgres,
    StartFaultStack,
    acknowledged_deposits,
    assert_reconciled,
    assert_table_holds_exactly,
    caught_up_and_equal,
    deposits,
    describe_exit,
    expected_balances,
    hours_spanned,
    read_balance,
    read_history,
    sigterm,
)
from tests.e2e.stack import PROBLEM_JSON, new_wallet
from wallet_cli.local.dynamodb_local import DynamoDBLocal

pytest_plugins = ["tests.e2e.fault_fixtures"]

READERS = 8
WALLETS = 4
DEPOSITS = 48
# Answers to count before the stop, while down, and after the start.
ANSWERS = 16


@dataclass(frozen=True)
class Read:
    """One GET through the gateway and what came back (`status` None: no HTTP answer)."""

    path: str
    started: float
    ended: float
    status: int | None
    exact: bool = False  # a 200 whose numbers are the expected ones
    clean_refusal: bool = False  # a 503 problem+json with Retry-After
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.exact


class ReadLoad:
    """READERS clients asking for the history and the balance of the wallets, round and
    round, until finish(); every answer is checked against `made` and remembered."""

    def __init__(self, base_url: str, made: list[Deposit]) -> None:
        self._expected = expected_balances(made)
        self._hours = hours_spanned(made)
        self._reads: list[Read] = []
        self._lock = threading.Lock()
        self._finishing = threading.Event()
        self._threads = [
            threading.Thread(target=self._reader, args=(base_url, number), daemon=True)
            for number in range(READERS)
        ]
        for thread in self._threads:
            thread.start()

    def count(self, predicate: Callable[[Read], bool]) -> int:
        with self._lock:
            return sum(1 for read in self._reads if predicate(read))

    def finish(self) -> list[Read]:
        self._finishing.set()
        for thread in self._threads:
            thread.join(HTTP_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a reader hangs"
        with self._lock:
            return list(self._reads)

    def _reader(self, base_url: str, number: int) -> None:
        wallets = sorted(self._expected)
        with httpx.Client(
            base_url=base_url, timeout=HTTP_TIMEOUT, headers=bearer_header()
        ) as client:
            turn = number
            while not self._finishing.is_set():
                wallet_id = wallets[turn % len(wallets)]
                read = self._read(client, wallet_id, history=turn % 2 == 0)
                with self._lock:
                    self._reads.append(read)
                turn += 1
                time.sleep(0.02)

    def _read(self, client: httpx.Client, wallet_id: str, *, history: bool) -> Read:
        expected = self._expected[wallet_id]
        started = time.monotonic()
        try:
            response = (
                read_history(client, wallet_id, self._hours)
                if history
                else read_balance(client, wallet_id)
            )
        except httpx.TransportError as error:
            return Read(wallet_id, started, time.monotonic(), None, detail=repr(error))
        ended = time.monotonic()
        path = response.request.url.path
        if response.status_code == 200:
            body = response.json()
            if history:
                exact = [Decimal(p["balance"]) for p in body["points"]] == expected
            else:
                exact = Decimal(body["balance"]) == expected[-1]
            return Read(path, started, ended, 200, exact=exact, detail=response.text[:300])
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        clean = (
            response.status_code == 503
            and media_type == PROBLEM_JSON
            and response.headers.get("Retry-After") is not None
            and response.json().get("status") == 503
        )
        return Read(
            path,
            started,
            ended,
            response.status_code,
            clean_refusal=clean,
            detail=response.text[:300],
        )


def pids(stack: FaultStack) -> dict[str, int | None]:
    """The running process of each service (None: it exited)."""
    processes = {
        "command": stack.command,
        "query": stack.query,
        "updater": stack.updater,
        "gateway": stack.gateway,
    }
    return {
        name: process.process.pid if process and process.process.poll() is None else None
        for name, process in processes.items()
    }


def write_all(stack: FaultStack, made: list[Deposit]) -> None:
    """Records the deposits through the gateway; each must be acknowledged at once."""
    attempts = DepositLoad(stack.base_url, made, clients=8, on_failure="stop").join()
    refused = [a.describe() for a in attempts if not a.acknowledged]
    assert not refused, refused[:5]
    assert acknowledged_deposits(attempts).keys() == {d.key for d in made}


def test_postgres_restarted_under_query_load_the_same_processes_recover(
    dynamodb_local: DynamoDBLocal,
    table_name: str,
    private_postgres: PrivatePostgres,
    fault_stack: StartFaultStack,
) -> None:
    postgres = private_postgres
    stack = fault_stack(dynamodb_local, table_name, postgres.url())
    wallets = [new_wallet("pg-restart") for _ in range(WALLETS)]
    endless = deposits("pg-restart", wallets, seed=62)
    before = [next(endless) for _ in range(DEPOSITS)]
    write_all(stack, before)
    with stack.client() as client:
        caught_up_and_equal(client, before)
    running = pids(stack)

    reads = ReadLoad(stack.base_url, before)
    try:
        wait_until(
            lambda: reads.count(lambda r: r.ok) >= ANSWERS,
            lambda: f"{reads.count(lambda r: r.ok)} exact answers",
            WAIT_TIMEOUT,
        )
        postgres.stop("immediate")
        down_at = time.monotonic()
        wait_until(
            lambda: reads.count(lambda r: r.started > down_at and r.status != 200) >= ANSWERS,
            lambda: "too few refusals while PostgreSQL is down",
            WAIT_TIMEOUT,
        )
        postgres.start()
        up_at = time.monotonic()
        wait_until(
            lambda: reads.count(lambda r: r.started > up_at and r.ok) >= ANSWERS,
            lambda: "too few exact answers after PostgreSQL came back",
            WAIT_TIMEOUT,
        )
    finally:
        answers = reads.finish()

    wrong = [r for r in answers if not r.ok and not r.clean_refusal]
    assert not wrong, f"{len(wrong)} answers neither exact nor a clean 503: {wrong[:5]}"
    assert any(r.clean_refusal and down_at < r.started and r.ended < up_at for r in answers)
    # The same processes, none restarted, answer again.
    assert pids(stack) == running, (running, pids(stack))

    # The same updater projects what is written after the restart.
    after = [next(endless) for _ in range(DEPOSITS)]
    write_all(stack, after)
    assert_table_holds_exactly(stack.contents(), before + after)
    with stack.client() as client:
        caught_up_and_equal(client, before + after)
    assert pids(stack) == running, (running, pids(stack))
    assert_reconciled(stack)

    # And they still stop cleanly.
    for process in (stack.updater, stack.query):
        assert process is not None
        assert sigterm(process, RUN_TIMEOUT) == 0, describe_exit(process)
