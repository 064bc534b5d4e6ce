"""SIGTERM to the gateway, and to the command service behind it, under a 32-client deposit
load through the gateway.

The process exits cleanly within its grace period; requests it had taken in complete and
their clients get the real answer (201); requests after it began stopping are refused
cleanly: a refused connection (or, from the stopping gateway, a keep-alive connection closed
before the request reached anything: HTTP/1.1's own race), or 503 problem+json with
Retry-After from the gateway when the command service is the one stopping. Never a 500,
never a request left hanging past the deadline.

Nothing acknowledged is lost and nothing is stored twice. The general rule: a refused
deposit may have been stored only if its call had reached the command service, and the
client's retry with the same Idempotency-Key after the restart settles it, 201 if it was not
stored, a replay of the stored record if it was; a refused connection never stores. With a
grace period longer than any call, the services do better, and the test holds them to it:
every call the command service handled (its call log) was answered to its HTTP client, so a
refused deposit is never one that was stored.
"""

import signal
import time
from typing import Literal

import pytest

from harness.waiting import wait_until
from tests.e2e.fault_stack import (
    GRACE_SECONDS,
    WAIT_TIMEOUT,
    Attempt,
    DepositLoad,
    FaultStack,
    StartFaultStack,
    acknowledged_deposits,
    assert_acknowledgements_consistent,
    assert_reconciled,
    assert_table_holds_exactly,
    by_key,
    caught_up_and_equal,
    deposits,
    post_until_acknowledged,
    sigterm,
)
from tests.e2e.processes import RECORD_METHOD
from tests.e2e.stack import new_wallet
from wallet_cli.local.dynamodb_local import DynamoDBLocal

pytest_plugins = ["tests.e2e.fault_fixtures"]

CLIENTS = 32
WALLETS = 4
BEFORE_SIGTERM = 2 * CLIENTS
# The client never opened a connection: nothing can have been stored.
REFUSED_CONNECTION = "ConnectError"
# A keep-alive connection the stopping gateway closed as a request was on its way: HTTP/1.1's
# own race (RFC 9112, 9.3.1). Clean only if the request went nowhere (checked below: the
# command service never saw it), so the client may send it again.
CLOSED_UNANSWERED = {"ReadError", "RemoteProtocolError", "WriteError"}

Target = Literal["gateway", "command"]


def stop_target(stack: FaultStack, target: Target) -> tuple[float, int]:
    """SIGTERM to the target; (when it was sent, the exit code)."""
    process = stack.gateway if target == "gateway" else stack.command
    assert process is not None
    sent_at = time.monotonic()
    return sent_at, sigterm(process, timeout=GRACE_SECONDS + 15)


def restart_target(stack: FaultStack, target: Target) -> None:
    if target == "gateway":
        stack.start_gateway()
    else:
        stack.start_command()


def clean(attempt: Attempt, target: Target, sent_at: float) -> bool:
    """Acknowledged, or refused the way a stopping process may refuse."""
    if attempt.acknowledged or attempt.error == REFUSED_CONNECTION:
        return True
    if target == "gateway":
        return attempt.error in CLOSED_UNANSWERED and attempt.ended > sent_at
    return attempt.clean_refusal


@pytest.mark.parametrize("target", ["gateway", "command"])
def test_sigterm_under_load_completes_in_flight_requests_and_loses_nothing(
    target: Target,
    dynamodb_local: DynamoDBLocal,
    table_name: str,
    database_url: str,
    fault_stack: StartFaultStack,
) -> None:
    stack = fault_stack(dynamodb_local, table_name, database_url)
    wallets = [new_wallet(f"sigterm-{target}") for _ in range(WALLETS)]
    load = DepositLoad(
        stack.base_url,
        deposits(f"sigterm-{target}", wallets, seed=64),
        clients=CLIENTS,
        on_failure="stop",
    )
    wait_until(
        lambda: load.count(lambda a: a.acknowledged) >= BEFORE_SIGTERM,
        lambda: f"{load.count(lambda a: a.acknowledged)} acknowledged",
        WAIT_TIMEOUT,
    )
    sent_at, exit_code = stop_target(stack, target)
    attempts = load.join()  # each client stops at its first refusal

    # uvicorn re-raises the SIGTERM once its graceful shutdown is done (since 0.29), so the
    # gateway ends "killed by SIGTERM"; that it drained is what the answers below show.
    clean_exits = (0, -signal.SIGTERM) if target == "gateway" else (0,)
    assert exit_code in clean_exits, f"{target} exit code {exit_code} on SIGTERM"
    assert stack.command is not None
    handled = {
        line.get("request_id") for line in stack.command.call_log(RECORD_METHOD, strict=False)
    }
    unclean = [
        f"{a.describe()} (reached the command service: {a.deposit.key in handled})"
        for a in attempts
        if not clean(a, target, sent_at)
    ]
    # A 500 for a call the command service never handled, right after its SIGTERM: grpc-core
    # answers CANCELLED to calls not yet handed to a handler (grpc/grpc#41785), and the
    # gateway turns CANCELLED into 500 where 503 (retry) would be right.
    assert not unclean, f"{len(unclean)} answers neither acknowledged nor refused: {unclean[:5]}"
    assert any(a.acknowledged and a.started < sent_at < a.ended for a in attempts), (
        "no request was in flight at SIGTERM; the test proves nothing"
    )
    refused = [a for a in attempts if not a.acknowledged]
    assert len(refused) == CLIENTS, "every client ends on a refusal"
    # In flight means the command service took the call: its client must have the answer.
    cut_off = [a.describe() for a in refused if a.deposit.key in handled]
    assert not cut_off, f"handled by the command service, yet refused: {cut_off[:5]}"
    assert_acknowledgements_consistent(attempts)

    acknowledged = acknowledged_deposits(attempts)
    contents = stack.contents()
    stored = contents.record_amounts()
    assert contents.aggregate_totals() == contents.record_totals()
    missing = [key for key in acknowledged if key not in stored]
    assert not missing, f"acknowledged but not stored: {missing[:5]}"
    never_connected = [a for a in refused if a.error == REFUSED_CONNECTION]
    assert not [a.describe() for a in never_connected if a.deposit.key in stored]

    # After a restart on the same port, the same keys settle each refused deposit once.
    restart_target(stack, target)
    with stack.client() as client:
        for attempt in refused:
            again = post_until_acknowledged(client, attempt.deposit)
            key = attempt.deposit.key
            if key in stored:
                assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (
                    200,
                    "true",
                ), (key, again.status_code, again.text)
            else:
                assert again.status_code == 201, (key, again.status_code, again.text)
        made = [tries[0].deposit for tries in by_key(attempts).values()]
        assert_table_holds_exactly(stack.contents(), made, attempts)
        caught_up_and_equal(client, made)
    assert_reconciled(stack)
