"""Fixtures shared by every test layer: a real DynamoDB Local for the session, a fresh
table per test, a fresh migrated PostgreSQL database per test, and in-process command and
query services on free ports."""

import os
import uuid
from collections.abc import Iterator

import pytest
from mypy_boto3_dynamodb.client import DynamoDBClient

from harness.scratch_database import (
    configured_server,
    database_name,
    migrate_database,
    new_database,
)
from services.command import server as command_server
from services.ledger.adapters.ledger_table import ensure_table
from services.ledger.adapters.write_store import dynamodb_client
from services.platform.grpc_server import GrpcService
from services.platform.settings import CommandSettings, QuerySettings, UpdaterSettings
from services.query import server as query_server
from tests.auth_support import TEST_SECRET, authenticated_channel
from wallet.v1 import command_pb2_grpc, query_pb2_grpc
from wallet_cli.local.dynamodb_local import DynamoDBLocal
from wallet_cli.local.embedded_postgres import embedded_postgres_url

# The CI machine's server (by default 127.0.0.1:5432); without one the tests use an
# embedded server (pgserver).
TEST_DATABASE_ENV = "WALLET_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """One in-memory DynamoDB Local for the whole run; boto3 in this process points at it."""
    with DynamoDBLocal() as local:
        previous = {name: os.environ.get(name) for name in local.client_env()}
        os.environ.update(local.client_env())
        yield local
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def dynamodb(dynamodb_local: DynamoDBLocal) -> DynamoDBClient:
    return dynamodb_client()


@pytest.fixture
def table_name(dynamodb: DynamoDBClient) -> str:
    """A new, empty ledger table for each test."""
    name = f"ledger-{uuid.uuid4().hex[:12]}"
    ensure_table(dynamodb, name)
    return name


class InProcessSettings(CommandSettings, QuerySettings, UpdaterSettings):
    """The settings of each service a test runs in its own process, in one object."""


@pytest.fixture
def settings(table_name: str) -> InProcessSettings:
    return InProcessSettings(
        table_name=table_name, listen_host="127.0.0.1", auth_hs256_secret=TEST_SECRET
    )


@pytest.fixture
def command_service(settings: CommandSettings) -> Iterator[GrpcService]:
    """The real command service, in this process, on a free port."""
    service = command_server.build(settings, port=0)
    service.start()
    yield service
    service.stop(grace=1)


@pytest.fixture
def command_stub(command_service: GrpcService) -> Iterator[command_pb2_grpc.WalletCommandStub]:
    with authenticated_channel(f"127.0.0.1:{command_service.port}") as channel:
        yield command_pb2_grpc.WalletCommandStub(channel)


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server where the tests may create databases."""
    url = configured_server(TEST_DATABASE_ENV)
    if url is not None:
        return url
    return embedded_postgres_url(tmp_path_factory.mktemp("postgres") / "data")


@pytest.fixture(scope="session")
def migrated_template(postgres_admin_url: str) -> Iterator[str]:
    """A database with the read model's schema, copied for each test (fast)."""
    with new_database(postgres_admin_url, "wallet_template") as url:
        migrate_database(url)
        yield database_name(url)


@pytest.fixture
def database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated, empty read model database for one test."""
    with new_database(postgres_admin_url, "wallet_test", template=migrated_template) as url:
        yield url


@pytest.fixture
def another_database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A second fresh, migrated, empty read model database (besides `database_url`)."""
    with new_database(postgres_admin_url, "wallet_test", template=migrated_template) as url:
        yield url


@pytest.fixture
def query_service(settings: QuerySettings, database_url: str) -> Iterator[GrpcService]:
    """The real query service, in this process, on a free port, over the test database."""
    service = query_server.build(settings, database_url, port=0)
    service.start()
    yield service
    service.stop(grace=1)


@pytest.fixture
def query_stub(query_service: GrpcService) -> Iterator[query_pb2_grpc.WalletQueryStub]:
    with authenticated_channel(f"127.0.0.1:{query_service.port}") as channel:
        yield query_pb2_grpc.WalletQueryStub(channel)
