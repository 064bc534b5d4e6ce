"""Fixtures shared by every test layer: a real DynamoDB Local for the session, a fresh
table per test, and an in-process command service on a free port."""

import os
import uuid
from collections.abc import Iterator

import grpc
import pytest
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.command import server as command_server
from services.ledger.adapters.ledger_table import ensure_table
from services.ledger.adapters.write_store import dynamodb_client
from services.ledger.grpc_server import GrpcService
from services.ledger.settings import Settings
from services.local.dynamodb_local import DynamoDBLocal
from wallet.v1 import command_pb2_grpc


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


@pytest.fixture
def settings(table_name: str) -> Settings:
    return Settings(table_name=table_name, listen_host="127.0.0.1")


@pytest.fixture
def command_service(settings: Settings) -> Iterator[GrpcService]:
    """The real command service, in this process, on a free port."""
    service = command_server.build(settings, port=0)
    service.start()
    yield service
    service.stop(grace=1)


@pytest.fixture
def command_stub(command_service: GrpcService) -> Iterator[command_pb2_grpc.WalletCommandStub]:
    with grpc.insecure_channel(f"127.0.0.1:{command_service.port}") as channel:
        yield command_pb2_grpc.WalletCommandStub(channel)
