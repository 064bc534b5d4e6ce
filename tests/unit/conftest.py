"""Fixtures of the unit tests."""

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters import ledger_table as t

MOTO_TABLE = "ledger-unit"

DATABASE_VARIABLES = (
    "DATABASE_URL",
    "WALLET_DATABASE_URL",
    "WALLET_DATABASE_HOST",
    "WALLET_DATABASE_PORT",
    "WALLET_DATABASE_NAME",
    "WALLET_DATABASE_USER",
    "WALLET_DATABASE_PASSWORD",
    "WALLET_DATABASE_IAM_AUTH",
)


@pytest.fixture
def no_database_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings see only the database variables the test sets itself."""
    for name in DATABASE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDBClient]:
    """A DynamoDB client of moto's, with the ledger table MOTO_TABLE created."""
    # Integration tests may have pointed boto3 at DynamoDB Local; moto must not pass through.
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**t.table_definition(MOTO_TABLE))
        yield dynamodb
