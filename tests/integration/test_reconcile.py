"""wallet reconcile: silent when the read model and the records agree, and names every
difference otherwise (exit 1)."""

from typing import TYPE_CHECKING

import psycopg
import pytest

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.write_store import dynamodb_client
from services.ledger.settings import Settings
from services.updater.main import run_reconcile
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.reconcile import reconcile
from services.updater.stream_reader import StreamReader, streams_client
from tests.updater_support import make_deposits, write_deposits

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


@pytest.fixture
def projected(dynamodb: "DynamoDBClient", table_name: str, database_url: str) -> None:
    """60 deposits written and projected by one updater pass."""
    write_deposits(dynamodb, table_name, make_deposits(60, prefix="reconcile"))
    reader = StreamReader(dynamodb_client(), streams_client(), table_name)
    Projector(reader, ProjectionStore(create_database_engine(database_url))).run_pass()


def _differences(table_name: str, database_url: str, *, check_records: bool) -> list[str]:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        report = reconcile(dynamodb_client(), table_name, engine, check_records=check_records)
    finally:
        engine.dispose()
    return report.differences


@pytest.mark.usefixtures("projected")
def test_an_exact_read_model_reconciles(
    table_name: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(table_name=table_name)
    assert run_reconcile(settings, database_url, check_records=True) == 0
    assert "no difference" in capsys.readouterr().out


@pytest.mark.usefixtures("projected")
def test_a_changed_read_model_row_is_reported(table_name: str, database_url: str) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as connection:
        row = connection.execute(
            "UPDATE shard_aggregates SET amount = amount + 0.01 "
            "WHERE ctid = (SELECT ctid FROM shard_aggregates LIMIT 1) RETURNING wallet_id"
        ).fetchone()
    assert row is not None
    differences = _differences(table_name, database_url, check_records=False)
    # The shard row itself, and the bucket total that no longer matches it.
    assert len(differences) == 2
    assert any(row[0] in line and "read model" in line for line in differences)
    assert any(line.startswith("bucket_totals") for line in differences)


@pytest.mark.usefixtures("projected")
def test_a_missing_record_is_reported_only_with_records(
    dynamodb: "DynamoDBClient", table_name: str, database_url: str
) -> None:
    record = next(
        item
        for item in dynamodb.scan(TableName=table_name)["Items"]
        if item[t.KIND]["S"] == t.RECORD_KIND
    )
    dynamodb.delete_item(
        TableName=table_name,
        Key={t.PARTITION_KEY: record[t.PARTITION_KEY], t.SORT_KEY: record[t.SORT_KEY]},
    )

    assert _differences(table_name, database_url, check_records=False) == []
    differences = _differences(table_name, database_url, check_records=True)
    assert len(differences) == 1
    assert record[t.WALLET_ID]["S"] in differences[0]
    assert "records" in differences[0]


def test_the_command_exits_1_on_a_difference(
    projected: None, table_name: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("DELETE FROM day_totals")
    assert run_reconcile(Settings(table_name=table_name), database_url, check_records=False) == 1
    out = capsys.readouterr().out
    assert "day_totals" in out
