"""Helpers for integration tests: full-table scans of the ledger table, request builders, and
a ledger wired as `wallet update` wires it with the query service over it."""

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mypy_boto3_dynamodb.client import DynamoDBClient
from psycopg import sql
from sqlalchemy import Engine

from harness.scratch_database import database_name, execute_autocommit, new_database
from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.ledger_table import ensure_table
from services.ledger.adapters.write_store import DynamoWriteStore, dynamodb_client
from services.ledger.domain.records import Recorded, new_deposit
from services.platform.settings import CommandSettings, QuerySettings
from services.query import server as query_server
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.stream_reader import StreamReader, streams_client
from tests.auth_support import TEST_SECRET, authenticated_channel
from tests.history_oracle import RawRecord, exact_sum
from wallet.v1 import command_pb2, query_pb2_grpc
from wallet_cli.local.dynamodb_local import DynamoDBLocal

Item = dict[str, Any]
Scan = Callable[[], list[Item]]


def timestamp(instant: datetime, nanos: int | None = None) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(instant)
    if nanos is not None:
        result.nanos = nanos
    return result


def deposit_request(
    *,
    wallet_id: str = "w1",
    request_id: str = "req-1",
    occurred_at: datetime | Timestamp | None,
    amount: str = "1.1",
) -> command_pb2.RecordTransactionRequest:
    request = command_pb2.RecordTransactionRequest(
        wallet_id=wallet_id, request_id=request_id, amount=amount
    )
    if isinstance(occurred_at, datetime):
        request.occurred_at.CopyFrom(timestamp(occurred_at))
    elif occurred_at is not None:
        request.occurred_at.CopyFrom(occurred_at)
    return request


def records(items: Iterable[Item]) -> list[Item]:
    return [item for item in items if item[t.KIND]["S"] == t.RECORD_KIND]


def aggregates(items: Iterable[Item]) -> list[Item]:
    return [item for item in items if item[t.KIND]["S"] == t.AGGREGATE_KIND]


def item_amount(item: Item) -> Decimal:
    """A record's amount, or an aggregate's running sum (decoded as the updater does)."""
    if item[t.KIND]["S"] == t.AGGREGATE_KIND:
        return t.aggregate_amount(item)
    return Decimal(item[t.AMOUNT]["N"])


def total_amount(items: Iterable[Item]) -> Decimal:
    return exact_sum(map(item_amount, items))


def total_count(items: Iterable[Item]) -> int:
    return sum(int(item[t.RECORD_COUNT]["N"]) for item in items)


@pytest.fixture
def scan(dynamodb: DynamoDBClient, table_name: str) -> Scan:
    """Every item of the test's table, strongly consistent, in key order."""

    def scan_all() -> list[Item]:
        items: list[Item] = []
        paginator = dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=table_name, ConsistentRead=True):
            items.extend(page["Items"])
        return sorted(items, key=lambda item: (item[t.PARTITION_KEY]["S"], item[t.SORT_KEY]["S"]))

    return scan_all


@dataclass
class Ledger:
    """Deposits through the DynamoDB write store and updater passes into PostgreSQL, wired as
    `wallet update` wires them; remembers every deposit for the model."""

    store: DynamoWriteStore
    projector: Projector
    projection: ProjectionStore
    shard_count: int
    records: list[RawRecord] = field(default_factory=list)

    def deposit(
        self, wallet_id: str, occurred_at: datetime, amount: str, request_id: str | None = None
    ) -> RawRecord:
        deposit = new_deposit(
            wallet_id=wallet_id,
            request_id=request_id or uuid.uuid4().hex,
            occurred_at=occurred_at,
            amount=amount,
            now=datetime.now(UTC),
        )
        assert isinstance(self.store.record(deposit), Recorded)
        # The model keeps the amount as written, not as the product parsed it.
        record = RawRecord(wallet_id, occurred_at.astimezone(UTC), Decimal(amount))
        self.records.append(record)
        return record

    def run_pass(self) -> None:
        with self.projection.exclusive() as locked:
            assert locked
            self.projector.run_pass()

    def shard(self, wallet_id: str, request_id: str) -> int:
        deposit = new_deposit(
            wallet_id=wallet_id,
            request_id=request_id,
            occurred_at=datetime(2020, 1, 1, tzinfo=UTC),
            amount="1",
            now=datetime.now(UTC),
        )
        return deposit.shard(self.shard_count)


def make_ledger(dynamodb: DynamoDBClient, table_name: str, engine: Engine) -> Ledger:
    projection = ProjectionStore(engine)
    reader = StreamReader(dynamodb, streams_client(), table_name)
    shard_count = CommandSettings().aggregate_shards
    return Ledger(
        store=DynamoWriteStore(dynamodb, table_name, shard_count),
        projector=Projector(reader, projection),
        projection=projection,
        shard_count=shard_count,
    )


# The query tests share one table, one database and one query service per module (each test
# uses its own wallets): a fresh stack per test costs seconds on a loaded machine.


@pytest.fixture(scope="module")
def module_table(dynamodb_local: DynamoDBLocal) -> str:
    name = f"ledger-query-{uuid.uuid4().hex[:12]}"
    ensure_table(dynamodb_client(), name)
    return name


@pytest.fixture(scope="module")
def database_time_zone() -> str | None:
    """The module database's TimeZone setting; None keeps the server's. A module overrides
    this to run the query service's sessions in another zone."""
    return None


@pytest.fixture(scope="module")
def module_database(
    postgres_admin_url: str, migrated_template: str, database_time_zone: str | None
) -> Iterator[str]:
    with new_database(postgres_admin_url, "wallet_query", template=migrated_template) as url:
        if database_time_zone is not None:
            set_zone = sql.SQL("ALTER DATABASE {} SET timezone TO {}").format(
                sql.Identifier(database_name(url)), sql.Literal(database_time_zone)
            )
            execute_autocommit(postgres_admin_url, set_zone)
        yield url


@pytest.fixture(scope="module")
def module_settings() -> QuerySettings:
    return QuerySettings(listen_host="127.0.0.1", auth_hs256_secret=TEST_SECRET)


@pytest.fixture(scope="module")
def ledger(module_table: str, module_database: str) -> Iterator[Ledger]:
    engine = create_database_engine(module_database, pool_size=2)
    yield make_ledger(dynamodb_client(), module_table, engine)
    engine.dispose()


@pytest.fixture(scope="module")
def stub(
    module_settings: QuerySettings, module_database: str
) -> Iterator[query_pb2_grpc.WalletQueryStub]:
    service = query_server.build(module_settings, module_database, port=0)
    service.start()
    with authenticated_channel(f"127.0.0.1:{service.port}") as channel:
        yield query_pb2_grpc.WalletQueryStub(channel)
    service.stop(grace=1)
