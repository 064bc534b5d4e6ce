"""DynamoDB Local SIGKILLed in the middle of a 32-client deposit load through the gateway,
then started again on the same port and data folder.

Every answer is an acknowledgement or a retryable refusal, never a 500 or a dropped
connection: 503 (problem+json, Retry-After) when the command service finds DynamoDB
unreachable, or 504 (problem+json) when the gateway's deadline passes first. The command
service's DynamoDB client may take longer than that deadline (three attempts with 1 s
connect and 5 s read timeouts, and backoff), and so may a deposit on a loaded machine: each
takes 1.5 to 2.5 s here on an idle one, against the stack's 5 s deadline. After a 504 the
command service may still store the deposit.

Clients retry each refused deposit with its Idempotency-Key until it is acknowledged: a
deposit stored before its answer was lost (the dead emulator's, or a 504's) comes back as a
replay, never as a second record. Afterwards every key is in the table exactly once, no
record lacks its aggregate increment or the other way round (`wallet reconcile --records` is
clean), and the updater that kept running throughout brings the read model to the exact
sums.

Two things about the emulator, measured on DynamoDB Local 2026-01-16 with -dbPath:

- Its stream survives the restart (same stream ARN, same shard, the records before the kill
  still readable), so the running `wallet update --follow` resumes from its checkpoint. The
  test fails if it exits instead (a lost stream would make it exit 3 naming --rebuild).
- It can lose the TransactWriteItems it acknowledged last before a SIGKILL (in 3 of 15
  direct runs of the write store, each time the single most recent acknowledgement; plain
  PutItem lost nothing in the same experiment). DynamoDB itself does not lose acknowledged
  writes, so this is no behaviour of the product; the test tolerates it only for keys among
  the last CLIENTS acknowledgements before the kill, only whole (no record and no aggregate
  increment: `reconcile --records`), and re-sends them, which must then record them once.
"""

import itertools
import os
import signal
import time
from decimal import Decimal

from harness.waiting import wait_until
from services.ledger.adapters.ledger_table import ensure_table
from tests.e2e.fault_stack import (
    RETRYABLE_STATUSES,
    WAIT_TIMEOUT,
    Attempt,
    Deposit,
    DepositLoad,
    StartFaultStack,
    acknowledged_deposits,
    alive,
    assert_acknowledgements_consistent,
    assert_reconciled,
    assert_table_holds_exactly,
    by_key,
    caught_up_and_equal,
    deposits,
    describe_exit,
    post_once,
    post_until_acknowledged,
)
from tests.e2e.processes import local_client
from tests.e2e.stack import new_wallet
from wallet_cli.local.dynamodb_local import DynamoDBLocal

pytest_plugins = ["tests.e2e.fault_fixtures"]

CLIENTS = 32
DEPOSITS = 320
WALLETS = 4
# Acknowledged deposits before the kill, and refusals seen before the restart.
BEFORE_KILL = 64
REFUSALS_WHILE_DOWN = 16
# Bounds the load and the emulator's restart on a small shared machine; they time nothing.
LOAD_TIMEOUT = 300.0
RESTART_TIMEOUT = 120.0


def lost_by_the_emulator(
    attempts: list[Attempt], stored: set[str], restarted_at: float
) -> list[Deposit]:
    """Acknowledged deposits missing from the table after the restart. Fails unless each
    is among the last CLIENTS acknowledgements before the restart (the emulator's loss
    window; a product that acknowledged without writing would lose others)."""
    first_acks = sorted(
        (tries[0] for tries in by_key(a for a in attempts if a.acknowledged).values()),
        key=lambda attempt: attempt.ended,
    )
    lost = [a for a in first_acks if a.deposit.key not in stored]
    before_restart = [a for a in first_acks if a.ended < restarted_at]
    last = {a.deposit.key for a in before_restart[-CLIENTS:]}
    outside = [a.describe() for a in lost if a.deposit.key not in last]
    assert not outside, f"acknowledged, then missing after the restart: {outside}"
    return [a.deposit for a in lost]


def test_dynamodb_killed_mid_load_and_restarted_loses_and_doubles_nothing(
    restartable_dynamodb: DynamoDBLocal, database_url: str, fault_stack: StartFaultStack
) -> None:
    dynamodb = restartable_dynamodb
    table_name = "ledger-fault-dynamodb"
    ensure_table(local_client(dynamodb), table_name)
    stack = fault_stack(dynamodb, table_name, database_url)
    wallets = [new_wallet("ddb-kill") for _ in range(WALLETS)]
    jobs = list(itertools.islice(deposits("ddb-kill", wallets, seed=61), DEPOSITS))
    load = DepositLoad(
        stack.base_url, jobs, clients=CLIENTS, on_failure="retry", give_up_after=LOAD_TIMEOUT
    )

    wait_until(
        lambda: load.count(lambda a: a.acknowledged) >= BEFORE_KILL,
        lambda: f"{load.count(lambda a: a.acknowledged)} acknowledged",
        WAIT_TIMEOUT,
    )
    java = dynamodb.pid
    assert java is not None
    os.kill(java, signal.SIGKILL)
    killed_at = time.monotonic()

    def refused_since_kill(attempt: Attempt) -> bool:
        return attempt.started > killed_at and not attempt.acknowledged

    wait_until(
        lambda: load.count(refused_since_kill) >= REFUSALS_WHILE_DOWN,
        lambda: f"only {load.count(refused_since_kill)} refusals while DynamoDB is down",
        WAIT_TIMEOUT,
    )
    dynamodb.stop()  # reaps the killed process
    dynamodb.start(timeout=RESTART_TIMEOUT)
    restarted_at = time.monotonic()
    attempts = load.join(timeout=LOAD_TIMEOUT)

    # Every failure a retryable refusal (no 500, no hang, no dropped connection).
    failed = [a for a in attempts if not a.acknowledged]
    unclean = [a.describe() for a in failed if not a.retryable_refusal]
    assert not unclean, (
        f"{len(unclean)} failures other than a retryable {RETRYABLE_STATUSES} problem: "
        f"{unclean[:5]}"
    )
    assert any(killed_at < a.started and a.ended < restarted_at for a in failed)
    # Every deposit was acknowledged in the end, with its amount, created at most once, and
    # a replay only after an attempt that failed.
    assert by_key(attempts).keys() == {job.key for job in jobs}
    acknowledged = acknowledged_deposits(attempts)
    assert acknowledged.keys() == {job.key for job in jobs}
    assert_acknowledgements_consistent(attempts)

    stored = set(stack.contents().record_amounts())
    lost = lost_by_the_emulator(attempts, stored, restarted_at)
    with stack.client() as client:
        for deposit in lost:
            again = post_until_acknowledged(client, deposit)
            assert again.status_code == 201, (deposit.key, again.status_code, again.text)

        # Every acknowledged key once, aggregates equal to their records.
        assert_table_holds_exactly(stack.contents(), acknowledged.values(), attempts)
        # The updater kept following the same stream through the restart.
        caught_up_and_equal(client, acknowledged.values())
    assert stack.updater is not None
    assert alive(stack.updater), describe_exit(stack.updater)
    assert_reconciled(stack)
    if lost:
        print(f"DynamoDB Local lost {len(lost)} acknowledged deposit(s): {lost}")


def test_dynamodb_hanging_past_the_deadline_gets_a_504_and_the_retry_replays_the_store(
    restartable_dynamodb: DynamoDBLocal, database_url: str, fault_stack: StartFaultStack
) -> None:
    """DynamoDB Local stopped (SIGSTOP: connections open, no answers) for longer than the
    gateway's deadline: the gateway answers 504, a retryable problem. The command service's
    DynamoDB client is still waiting, so once the store answers again the deposit is stored
    after all; the client's retry with the same key then gets that record as a replay (200),
    and the table holds it once."""
    dynamodb = restartable_dynamodb
    table_name = "ledger-fault-dynamodb-hang"
    ensure_table(local_client(dynamodb), table_name)
    stack = fault_stack(dynamodb, table_name, database_url)
    first, hung = itertools.islice(deposits("ddb-hang", [new_wallet("ddb-hang")], seed=62), 2)
    assert post_once(stack.base_url, first).status == 201  # connections open, code warm
    java = dynamodb.pid
    assert java is not None

    os.kill(java, signal.SIGSTOP)
    try:
        refused = post_once(stack.base_url, hung)
    finally:
        os.kill(java, signal.SIGCONT)

    assert refused.status == 504, refused.describe()
    assert refused.retryable_refusal, refused.describe()
    wait_until(
        lambda: hung.key in stack.contents().record_amounts(),
        lambda: f"{hung.key} not stored after the store came back",
        WAIT_TIMEOUT,
    )
    with stack.client() as client:
        again = post_until_acknowledged(client, hung)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (200, "true"), (
        again.status_code,
        again.text,
    )
    assert Decimal(again.json()["amount"]) == hung.amount
    assert_table_holds_exactly(stack.contents(), [first, hung], [refused])
