"""Fixtures for end-to-end tests: real `wallet` processes on real sockets. Every process a
test starts through them is stopped at teardown, whether the test passed or not."""

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from harness.dev_stack import DevPorts, dev_stack_processes
from harness.processes import kill_all
from services.ledger.adapters.ledger_table import ensure_table
from tests.e2e.processes import (
    StartCommandService,
    StartDevStack,
    WalletProcess,
    dev_env,
    launch_command_service,
    local_client,
)
from wallet_cli.local.dynamodb_local import DynamoDBLocal, free_port


@pytest.fixture
def start_command_service(tmp_path: Path) -> Iterator[StartCommandService]:
    """Starts `wallet serve command` against a DynamoDB Local and a table, on a free port,
    and waits until its health check says SERVING."""
    started: list[WalletProcess] = []

    def start(
        dynamodb: DynamoDBLocal, table_name: str, env: Mapping[str, str] | None = None
    ) -> WalletProcess:
        service = launch_command_service(dynamodb, table_name, tmp_path / "logs", env)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


@pytest.fixture
def command_process(
    start_command_service: StartCommandService, dynamodb_local: DynamoDBLocal, table_name: str
) -> WalletProcess:
    """`wallet serve command` on the session's DynamoDB Local and a fresh table."""
    return start_command_service(dynamodb_local, table_name)


@pytest.fixture(scope="module")
def shared_command_process(
    dynamodb_local: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WalletProcess]:
    """One `wallet serve command` for a module's tests that do not change or stop it."""
    table_name = f"ledger-e2e-{uuid.uuid4().hex[:12]}"
    ensure_table(local_client(dynamodb_local), table_name)
    service = launch_command_service(
        dynamodb_local, table_name, tmp_path_factory.mktemp("shared-command")
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def restartable_dynamodb(tmp_path: Path) -> Iterator[DynamoDBLocal]:
    """A DynamoDB Local of the test's own, on disk: stop() and start() keep its tables."""
    dynamodb = DynamoDBLocal(port=free_port(), data_dir=tmp_path / "dynamodb")
    dynamodb.start()
    try:
        yield dynamodb
    finally:
        dynamodb.stop()


@pytest.fixture
def start_dev_stack(tmp_path: Path) -> Iterator[StartDevStack]:
    """Starts `wallet dev` (not waiting for it). At teardown it stops every stack it started
    and kills whatever still runs on behalf of one of them."""
    started: list[tuple[WalletProcess, Path]] = []

    def start(dev_dir: Path, ports: DevPorts) -> WalletProcess:
        stack = WalletProcess.start(
            ["dev"], dev_env(dev_dir, ports), command_port=ports.command, log_dir=tmp_path / "logs"
        )
        started.append((stack, dev_dir))
        return stack

    try:
        yield start
    finally:
        for stack, dev_dir in started:
            try:
                stack.stop(timeout=20)
            finally:
                kill_all(dev_stack_processes(dev_dir))
