"""The database roles `wallet migrate` creates, on a real PostgreSQL: the query service's role
reads and nothing more, the updater's runs a pass, a rebuild and a reconcile, creating the
roles is idempotent and safe when migrations of several databases race, and with IAM
authentication every new connection signs in with a token of its own.

Roles are the server's, shared by every database and test session: the tests that need
roles from scratch use names of their own and drop them."""

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from mypy_boto3_dynamodb.client import DynamoDBClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from harness.processes import wallet_command
from harness.scratch_database import new_database
from harness.waiting import wait_until
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.migrations import (
    MIGRATE_LOCK_KEY,
    ROLES,
    ProcessRoles,
    grant_roles,
    migrate,
)
from services.ledger.adapters.read_model import metadata
from services.platform.settings import UpdaterSettings
from services.updater.main import run_reconcile, run_updater
from tests.updater_support import (
    START,
    assert_exact,
    assert_history_exact,
    make_deposits,
    total_records,
    write_deposits,
)

TABLES = [table.name for table in metadata.sorted_tables]
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def as_role(database_url: str, role: str) -> str:
    """The URL of the same database for `role` (the test server trusts local sign-ins)."""
    url = make_url(database_url).set(username=role, password=None)
    return url.render_as_string(hide_password=False)


def table_privileges(database_url: str, role: str) -> dict[str, set[str]]:
    """The privileges `role` has on each table of the schema, alembic_version included."""
    with psycopg.connect(database_url) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        return {
            table: {
                privilege
                for privilege in TABLE_PRIVILEGES
                if connection.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
                ).fetchone()
                == (True,)
            }
            for table in tables
        }


def assert_granted(database_url: str, roles: ProcessRoles = ROLES) -> None:
    """Each role has exactly its privileges on each read model table, none on the rest."""
    expected = {roles.query: {"SELECT"}, roles.updater: {"SELECT", "INSERT", "UPDATE", "DELETE"}}
    for role, privileges in expected.items():
        granted = table_privileges(database_url, role)
        assert granted == {**{table: privileges for table in TABLES}, "alembic_version": set()}


# --- the query service's role ---------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO bucket_totals (wallet_id, bucket, amount) VALUES ('w', now(), 1)",
        "UPDATE projection_status SET last_pass_finished_at = now()",
        "DELETE FROM day_totals",
        "DELETE FROM stream_checkpoints",
        "TRUNCATE shard_aggregates",
        "CREATE TABLE intruder (id integer)",
        "ALTER TABLE day_totals ADD COLUMN intruder integer",
        "DROP TABLE bucket_totals",
    ],
)
def test_the_query_role_may_read_and_nothing_else(database_url: str, statement: str) -> None:
    with psycopg.connect(as_role(database_url, ROLES.query), autocommit=True) as connection:
        assert connection.execute("SELECT current_user").fetchone() == (ROLES.query,)
        for table in TABLES:
            connection.execute(f"SELECT count(*) FROM {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(statement)


def test_the_roles_have_exactly_their_privileges_and_own_nothing(database_url: str) -> None:
    assert_granted(database_url)
    with psycopg.connect(database_url) as connection:
        owners = {
            owner
            for (owner,) in connection.execute(
                "SELECT tableowner FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        migrating_user = connection.execute("SELECT current_user").fetchone()
    assert migrating_user is not None
    assert owners == {migrating_user[0]}
    for role in astuple(ROLES):
        with psycopg.connect(database_url) as connection:
            row = connection.execute(
                "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
                " FROM pg_roles WHERE rolname = %s",
                (role,),
            ).fetchone()
            create_in_schema = connection.execute(
                "SELECT has_schema_privilege(%s, current_schema(), 'CREATE')", (role,)
            ).fetchone()
        assert row == (True, False, False, False, False), role
        assert create_in_schema == (False,), role


# --- the updater's role ---------------------------------------------------------------------


def test_update_rebuild_and_reconcile_run_as_the_updater_role(
    settings: UpdaterSettings,
    dynamodb: DynamoDBClient,
    table_name: str,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`wallet update`, `wallet update --rebuild` and `wallet reconcile` as the CLI runs
    them, signed in as wallet_updater; the query role then reads what they wrote."""
    updater_url = as_role(database_url, ROLES.updater)
    deposits = make_deposits(60, prefix="as-updater")
    write_deposits(dynamodb, table_name, deposits)

    assert run_updater(settings, updater_url, follow=False, rebuild=False, segments=2) == 0
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 60

    more = make_deposits(20, prefix="as-updater-rebuilt", seed=1)
    write_deposits(dynamodb, table_name, more)
    assert run_updater(settings, updater_url, follow=False, rebuild=True, segments=2) == 0
    assert total_records(assert_exact(dynamodb, table_name, database_url)) == 80

    assert run_reconcile(settings, updater_url, check_records=True) == 0
    assert "no difference" in capsys.readouterr().out
    assert_history_exact(
        as_role(database_url, ROLES.query), deposits + more, START, START + timedelta(days=3)
    )


# --- creating the roles ---------------------------------------------------------------------


def test_migrating_again_keeps_the_roles_and_their_grants(database_url: str) -> None:
    """`database_url` was migrated (as its template); a second and third run change
    nothing and fail on nothing."""
    engine = create_database_engine(database_url, pool_size=1)
    try:
        migrate(engine)
        migrate(engine)
        with engine.connect() as connection:
            roles = connection.execute(
                text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"),
                {"names": list(astuple(ROLES))},
            )
            assert sorted(name for (name,) in roles) == sorted(astuple(ROLES))
    finally:
        engine.dispose()
    assert_granted(database_url)


def test_migrating_again_takes_back_what_was_granted_by_hand(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"GRANT INSERT, TRUNCATE ON day_totals TO {ROLES.query}")
        connection.execute(f"GRANT SELECT ON alembic_version TO {ROLES.query}")
    engine = create_database_engine(database_url, pool_size=1)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    assert_granted(database_url)


def test_migrations_of_one_database_at_once_run_one_after_another(
    postgres_admin_url: str,
) -> None:
    """A release's migrate and one run by hand, as separate processes: while the migration
    lock is held, each waits for it (unserialised, they raced on alembic_version's creation
    and on the grants), then each succeeds."""
    with new_database(postgres_admin_url, "wallet_race") as url:
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
            runs = [
                subprocess.Popen(
                    wallet_command("migrate"),
                    env={**os.environ, "DATABASE_URL": url},
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(3)
            ]

            def waiting() -> int:
                # This database's waiters only: other tests and suites share the server.
                row = holder.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ).fetchone()
                assert all(run.poll() is None for run in runs), "a migrate ended early"
                return int(row[0]) if row else 0

            wait_until(lambda: waiting() == len(runs), lambda: f"{waiting()} waiting", 60)
        failures = [run.communicate(timeout=120)[1] for run in runs if run.wait(120) != 0]
        assert failures == []
        assert_granted(url)


@pytest.fixture
def new_roles(
    postgres_admin_url: str, database_url: str, another_database_url: str
) -> Iterator[ProcessRoles]:
    """Role names no other test uses, for the test's two databases; dropped afterwards with
    whatever they were granted there."""
    suffix = uuid.uuid4().hex[:8]
    roles = ProcessRoles(query=f"wallet_query_{suffix}", updater=f"wallet_updater_{suffix}")
    yield roles
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        names = astuple(roles)
        created = [
            name
            for (name,) in admin.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names),)
            )
        ]
    for role in created:
        for url in (database_url, another_database_url):
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP ROLE "{role}"')


def _grant_committed(engine: Engine, roles: ProcessRoles) -> None:
    with engine.begin() as connection:
        grant_roles(connection, roles)


def _waiting_for_a_lock(admin_url: str, database: str) -> bool:
    with psycopg.connect(admin_url) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (database,),
        ).fetchone()
    return row is not None and row[0] > 0


def test_migrations_of_two_databases_racing_for_the_roles_both_succeed(
    postgres_admin_url: str,
    database_url: str,
    another_database_url: str,
    new_roles: ProcessRoles,
) -> None:
    """The first creates the roles and has not committed; the second, which cannot see them
    yet, waits on the first's CREATE ROLE, then must find them created rather than fail."""
    first = create_database_engine(database_url, pool_size=1)
    second = create_database_engine(another_database_url, pool_size=1)
    try:
        with first.connect() as connection, ThreadPoolExecutor(max_workers=1) as pool:
            transaction = connection.begin()
            grant_roles(connection, new_roles)
            racing = pool.submit(_grant_committed, second, new_roles)
            other_database = make_url(another_database_url).database
            assert other_database is not None
            wait_until(
                lambda: _waiting_for_a_lock(postgres_admin_url, other_database),
                lambda: "the second migration never waited for the first's roles",
                timeout=10,
            )
            transaction.commit()
            racing.result(timeout=10)
    finally:
        first.dispose()
        second.dispose()
    assert_granted(database_url, new_roles)
    assert_granted(another_database_url, new_roles)


def test_iam_roles_join_rds_iam_where_it_exists(database_url: str, new_roles: ProcessRoles) -> None:
    """rds_iam exists only on RDS; here it is made in a transaction that is rolled back,
    so no other session ever sees it."""
    engine = create_database_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            grant_roles(connection, new_roles)  # no rds_iam: nothing to join
            members = text("SELECT pg_has_role(:role, 'rds_iam', 'MEMBER')")
            connection.execute(text("CREATE ROLE rds_iam NOLOGIN"))
            assert connection.execute(members, {"role": new_roles.query}).scalar_one() is False
            grant_roles(connection, new_roles)
            grant_roles(connection, new_roles)  # already members: nothing to do
            for role in astuple(new_roles):
                assert connection.execute(members, {"role": role}).scalar_one() is True
            connection.rollback()
    finally:
        engine.dispose()


# --- IAM authentication ---------------------------------------------------------------------


def _signed_at(token: str) -> datetime:
    query = parse_qs(urlsplit(f"https://{token}").query)
    return datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _password(connection: Connection) -> str:
    """The password the connection signed in with."""
    driver = connection.connection.driver_connection
    assert driver is not None
    return str(driver.info.password)


def test_each_new_connection_signs_in_with_a_fresh_token(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real signing with fake credentials (no AWS call). The local server trusts the sign-in
    and ignores the password, so the test reads the password each connection used: a
    token signed once (at engine creation or at the first connection) and reused would be
    the same string, signed before the second connection was asked for."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEWALLET")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    url = as_role(database_url, ROLES.query)
    engine = create_database_engine(url, pool_size=1, iam_auth=True)
    try:
        time.sleep(1.1)  # X-Amz-Date counts seconds
        asked_first = datetime.now(UTC).replace(microsecond=0)
        with engine.connect() as first:
            assert first.execute(text("SELECT current_user")).scalar_one() == ROLES.query
            time.sleep(1.1)
            asked_second = datetime.now(UTC).replace(microsecond=0)
            with engine.connect() as second:  # the pool's connection is taken: a new one
                tokens = [_password(first), _password(second)]
        with engine.connect() as pooled:  # no new connection, no new token
            assert _password(pooled) in tokens
    finally:
        engine.dispose()

    host, port = make_url(url).host, make_url(url).port or 5432
    for token in tokens:
        assert token.startswith(f"{host}:{port}/?Action=connect&DBUser={ROLES.query}&")
    assert tokens[0] != tokens[1]
    assert _signed_at(tokens[0]) >= asked_first
    assert _signed_at(tokens[1]) >= asked_second
