"""`wallet update --follow` SIGKILLed again and again while deposits come in through the
gateway, and started again each time; then a final one-shot `wallet update`.

Each updater pass commits its rows and checkpoints in one transaction, so a kill at any
moment loses nothing and counts nothing twice. Every killed updater had committed passes
(its kill lands among commits, not before the first one), and every deposit has an
aggregate item of its own, so a pass whose rows were lost while its checkpoint advanced
could not be healed by a later image of the same item. While the kills go on, every balance
read through the gateway only grows and never exceeds the final sum; at the end the read
model equals the exact sums of the acknowledged deposits, wallet by wallet and hour by hour,
and `wallet reconcile --records` finds no difference.
"""

import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from harness.waiting import wait_until
from tests.e2e.fault_stack import (
    WAIT_TIMEOUT,
    DepositLoad,
    FaultStack,
    StartFaultStack,
    acknowledged_deposits,
    alive,
    assert_read_model_equals,
    assert_reconciled,
    assert_table_holds_exactly,
    deposits,
    describe_exit,
    expected_balances,
    read_balance,
    sigkill,
    updater_lock_holders,
)
from tests.e2e.stack import new_wallet, read_as_of
from wallet_cli.local.dynamodb_local import DynamoDBLocal

pytest_plugins = ["tests.e2e.fault_fixtures"]

CLIENTS = 4
WALLETS = 4
KILLS = 5
ANOTHER_UPDATER = "another updater is running"


def sample_balances(
    client: httpx.Client, wallets: list[str], seen: dict[str, list[Decimal]]
) -> None:
    for wallet_id in wallets:
        response = read_balance(client, wallet_id)
        assert response.status_code == 200, response.text
        seen[wallet_id].append(Decimal(response.json()["balance"]))


def wait_until_unlocked(database_url: str) -> None:
    """A SIGKILLed updater's lock goes once PostgreSQL notices; an updater started before
    that would find the lock taken and exit at once."""
    wait_until(
        lambda: updater_lock_holders(database_url) == 0,
        lambda: "a killed updater's lock was never released",
        WAIT_TIMEOUT,
    )


def wait_until_working(stack: FaultStack, client: httpx.Client, database_url: str) -> None:
    """Until the running updater holds the lock and has committed a pass since."""
    updater = stack.updater
    assert updater is not None

    def locked() -> bool:
        assert alive(updater), describe_exit(updater)
        return updater_lock_holders(database_url) == 1

    wait_until(locked, lambda: "the updater did not take its lock", WAIT_TIMEOUT)
    locked_at = datetime.now(UTC)

    def committed() -> bool:
        assert alive(updater), describe_exit(updater)
        as_of = read_as_of(client)
        return as_of is not None and as_of > locked_at

    wait_until(committed, lambda: "the updater committed no pass", WAIT_TIMEOUT)


def test_updater_sigkilled_again_and_again_leaves_an_exact_read_model(
    dynamodb_local: DynamoDBLocal, table_name: str, database_url: str, fault_stack: StartFaultStack
) -> None:
    stack = fault_stack(dynamodb_local, table_name, database_url)
    wallets = [new_wallet("updater-kill") for _ in range(WALLETS)]
    load = DepositLoad(
        stack.base_url,
        deposits("updater-kill", wallets, seed=63, bucket_each=True),
        clients=CLIENTS,
        on_failure="stop",
    )
    rng = random.Random(63)
    seen: dict[str, list[Decimal]] = defaultdict(list)

    with stack.client() as client:
        for _ in range(KILLS):
            wait_until_working(stack, client, database_url)
            working_until = time.monotonic() + rng.uniform(0.5, 1.5)
            while time.monotonic() < working_until:
                sample_balances(client, wallets, seen)
            updater = stack.updater
            assert updater is not None
            assert alive(updater), describe_exit(updater)
            sigkill(updater)
            wait_until_unlocked(database_url)
            stack.start_updater()
        load.finish()
        attempts = load.join()
        sample_balances(client, wallets, seen)

        refused = [a.describe() for a in attempts if not a.acknowledged]
        assert not refused, refused[:5]
        made = acknowledged_deposits(attempts)
        assert len(made) >= KILLS * CLIENTS, f"only {len(made)} deposits during {KILLS} kills"

        # To the end: the last follower killed too, then one pass that must run.
        assert stack.updater is not None
        sigkill(stack.updater)
        wait_until_unlocked(database_url)
        final = stack.run("update")
        assert final.returncode == 0, final.describe()
        assert ANOTHER_UPDATER not in final.stderr, final.describe()

        assert_table_holds_exactly(stack.contents(), made.values(), attempts)
        assert_read_model_equals(client, made.values())
    assert_reconciled(stack)

    # While the kills went on, no balance went backwards or past the final sum.
    final_balances = {
        wallet: hourly[-1] for wallet, hourly in expected_balances(made.values()).items()
    }
    for wallet_id, balances in seen.items():
        assert balances == sorted(balances), (wallet_id, balances)
        assert balances[-1] <= final_balances[wallet_id], (wallet_id, balances[-1])
