"""Fixtures of the fault tests; test modules load them with
`pytest_plugins = ["tests.e2e.fault_fixtures"]`. Every process and server they start is
stopped at teardown, whether the test passed or not."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.migrations import migrate
from tests.e2e.fault_stack import FaultStack, PrivatePostgres, StartFaultStack
from wallet_cli.local.dynamodb_local import DynamoDBLocal


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[StartFaultStack]:
    """Starts a FaultStack on (DynamoDB Local, table, database URL) and returns once its
    gateway is ready."""
    stacks: list[FaultStack] = []

    def start(dynamodb: DynamoDBLocal, table_name: str, database_url: str) -> FaultStack:
        stack = FaultStack(dynamodb, table_name, database_url, tmp_path / "logs")
        stacks.append(stack)
        stack.start_all()
        return stack

    try:
        yield start
    finally:
        for stack in stacks:
            stack.stop_all()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running PostgreSQL of the test's own whose `postgres` database has the read
    model's schema."""
    server = PrivatePostgres()
    try:
        server.initdb()
        server.start()
        engine = create_database_engine(server.url(), pool_size=1)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        yield server
    finally:
        server.remove()
