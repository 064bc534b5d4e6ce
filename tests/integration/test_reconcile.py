"""wallet reconcile: silent when the read model and the records agree, and names every
difference otherwise (exit 1); also when PostgreSQL's sessions default to a time zone
other than UTC, across a repeated DST hour."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from harness.scratch_database import new_database
from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.database import create_database_engine, sqlalchemy_url
from services.ledger.adapters.write_store import dynamodb_client
from services.ledger.domain.records import Deposit
from services.platform.settings import ReconcileSettings
from services.updater.main import run_reconcile
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.reconcile import reconcile
from services.updater.stream_reader import StreamReader, streams_client
from tests.updater_support import (
    assert_history_exact,
    make_deposits,
    write_deposits,
)

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
    settings = ReconcileSettings(table_name=table_name)
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
    aggregate, projected_record = _differences(table_name, database_url, check_records=True)
    wallet_id, request_id = record[t.WALLET_ID]["S"], record[t.REQUEST_ID]["S"]
    assert aggregate.startswith(f"{wallet_id} ")
    assert "records" in aggregate
    assert projected_record.startswith(f"record {wallet_id} {request_id!r}: read model ")
    assert projected_record.endswith("table missing")


@pytest.mark.usefixtures("projected")
def test_a_projected_record_unlike_the_table_is_reported_only_with_records(
    table_name: str, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        wallet_id, request_id = connection.execute(
            "UPDATE records SET amount = amount + 0.01 WHERE request_id = "
            "(SELECT min(request_id) FROM records) RETURNING wallet_id, request_id"
        ).fetchone() or ("", "")

    assert _differences(table_name, database_url, check_records=False) == []
    record, bucket = _differences(table_name, database_url, check_records=True)
    assert record.startswith(f"record {wallet_id} {request_id!r}: read model ")
    assert bucket.startswith(f"bucket_totals {wallet_id} ")
    assert bucket.endswith("differs from the read model's records")


def test_the_command_exits_1_on_a_difference(
    projected: None, table_name: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("DELETE FROM day_totals")
    assert (
        run_reconcile(ReconcileSettings(table_name=table_name), database_url, check_records=False)
        == 1
    )
    out = capsys.readouterr().out
    assert "day_totals" in out


# A session time zone other than UTC ------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
# New York's clocks went back at 06:00Z that day: 01:00-01:59 local came twice (05:00Z-06:59Z).
FOLD_START = datetime(2024, 11, 3, 5, 0, tzinfo=UTC)


def fold_deposits() -> list[Deposit]:
    """A deposit in every 15-minute bucket from an hour before the repeated hour to an hour
    after it, in two wallets."""
    return [
        Deposit(
            f"fold-{index % 2}",
            f"fold-{index:02d}",
            FOLD_START + timedelta(minutes=15 * index - 60, seconds=7),
            Decimal(index + 1) / 100,
        )
        for index in range(16)
    ]


@pytest.fixture(params=["database default", "url options"])
def new_york_database(
    request: pytest.FixtureRequest, postgres_admin_url: str, migrated_template: str
) -> Iterator[str]:
    """A read model database whose sessions are in America/New_York unless told otherwise:
    by the database's default, or by the URL's libpq options."""
    with new_database(postgres_admin_url, "wallet_test", template=migrated_template) as url:
        if request.param == "url options":
            yield url + "?options=-c%20timezone%3DAmerica/New_York"
            return
        with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
            connection.execute(
                f"ALTER DATABASE \"{make_url(url).database}\" SET timezone = 'America/New_York'"
            )
        yield url


def session_time_zone(database_url: str) -> str:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SHOW timezone").fetchone()
    assert row is not None
    return str(row[0])


def test_a_server_in_another_time_zone_reconciles_and_answers_exactly_across_a_dst_fold(
    new_york_database: str,
    dynamodb: "DynamoDBClient",
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = new_york_database
    assert session_time_zone(url) == "America/New_York"
    deposits = fold_deposits()
    write_deposits(dynamodb, table_name, deposits)
    engine = create_database_engine(url, pool_size=2)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW timezone").scalar_one() == "UTC"
        reader = StreamReader(dynamodb_client(), streams_client(), table_name)
        Projector(reader, ProjectionStore(engine)).run_pass()
    finally:
        engine.dispose()

    assert run_reconcile(ReconcileSettings(table_name=table_name), url, check_records=True) == 0
    assert "no difference" in capsys.readouterr().out
    start, end = FOLD_START - timedelta(hours=2), FOLD_START + timedelta(hours=4)
    for zone in (NEW_YORK, ZoneInfo("UTC")):
        assert_history_exact(url, deposits, start, end, zone)


def test_reconcile_compares_instants_in_utc_whatever_its_session_zone(
    dynamodb: "DynamoDBClient", table_name: str, database_url: str
) -> None:
    write_deposits(dynamodb, table_name, fold_deposits())
    engine = create_database_engine(database_url, pool_size=2)
    try:
        reader = StreamReader(dynamodb_client(), streams_client(), table_name)
        Projector(reader, ProjectionStore(engine)).run_pass()
    finally:
        engine.dispose()
    # An engine of someone else's making, its sessions in New York time.
    new_york = create_engine(
        sqlalchemy_url(database_url), connect_args={"options": "-c timezone=America/New_York"}
    )
    try:
        report = reconcile(dynamodb_client(), table_name, new_york, check_records=True)
    finally:
        new_york.dispose()

    assert report.differences == []
    assert report.records == 16
