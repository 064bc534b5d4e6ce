"""`wallet dev`: one command that starts the local stack, stops all of it on SIGTERM, keeps
its data across restarts, and says plainly when a port it needs is taken."""

import signal
import subprocess
from pathlib import Path

import pytest

from harness.dev_stack import DevPorts, describe, dev_stack_processes
from harness.processes import is_alive
from tests.e2e.processes import (
    StartDevStack,
    WalletProcess,
    deposit_request,
    occupied_port,
    run_refused_dev,
)
from wallet.v1 import command_pb2, command_pb2_grpc

STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def stop_and_check_nothing_remains(stack: WalletProcess, dev_dir: Path) -> None:
    """SIGTERM `wallet dev`; it must exit 0 and take every process it started with it."""
    tree = stack.tree()
    descendants = tree[1:]
    assert any(process.name() == "java" for process in descendants), describe(tree)

    stack.process.send_signal(signal.SIGTERM)
    try:
        exit_code = stack.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wallet dev still running {STOP_TIMEOUT} s after SIGTERM")
    assert exit_code == 0, stack.stderr_text()[-3000:]

    survivors = [process for process in descendants if is_alive(process)]
    assert not survivors, f"left running after wallet dev exited: {describe(survivors)}"
    # Also what left the tree on its own (a daemonised server would).
    strays = dev_stack_processes(dev_dir)
    assert not strays, f"left running after wallet dev exited: {describe(strays)}"


def record(stack: WalletProcess, request: command_pb2.RecordTransactionRequest) -> bool:
    """Sends the request to the stack's command service; returns `replayed`."""
    with stack.channel() as channel:
        response = command_pb2_grpc.WalletCommandStub(channel).RecordTransaction(
            request, timeout=15
        )
    assert response.record.amount == request.amount
    replayed: bool = response.replayed
    return replayed


def test_dev_stack_stops_every_child_and_keeps_data(
    start_dev_stack: StartDevStack, tmp_path: Path
) -> None:
    dev_dir = tmp_path / "dev"
    ports = DevPorts()
    request = deposit_request("dev-wallet", "dev-1", "12.5")

    stack = start_dev_stack(dev_dir, ports)
    stack.wait_until_serving(timeout=STARTUP_TIMEOUT)
    assert record(stack, request) is False
    stop_and_check_nothing_remains(stack, dev_dir)

    # Same folder and ports: the ports were released, and the deposit is still there.
    again = start_dev_stack(dev_dir, ports)
    again.wait_until_serving(timeout=STARTUP_TIMEOUT)
    assert record(again, request) is True
    stop_and_check_nothing_remains(again, dev_dir)


@pytest.mark.parametrize(
    ("busy", "named"),
    [("command", "command service"), ("dynamodb", "DynamoDB Local")],
)
def test_busy_port_is_reported_by_name(tmp_path: Path, busy: str, named: str) -> None:
    dev_dir = tmp_path / "dev"
    with occupied_port() as taken:
        result, leftovers = run_refused_dev(dev_dir, DevPorts(**{busy: taken}))

    assert result.returncode != 0, result.stdout
    assert named in result.stderr, result.stderr
    assert str(taken) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not leftovers, f"left running: {describe(leftovers)}"
