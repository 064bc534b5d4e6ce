"""Throwaway PostgreSQL databases for tests and benchmarks: created (empty, or copied from a
migrated template) on a server where they may be, dropped at the end even while in use.

The server is the one an environment variable names (WALLET_TEST_DATABASE_URL for the tests,
$WALLET_BENCH_DATABASE_URL for the benchmarks), or an embedded one (pgserver) when that
server cannot be reached.
"""

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.migrations import migrate
from wallet_cli.local.embedded_postgres import embedded_postgres

ADMIN_URL_ENV = "WALLET_BENCH_DATABASE_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def reachable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def configured_server(env_name: str) -> str | None:
    """The admin URL in $env_name (by default the local server's), None when it does not
    answer."""
    url = os.environ.get(env_name, DEFAULT_ADMIN_URL)
    return url if reachable(url) else None


def execute_autocommit(url: str, statement: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` instead."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def database_name(url: str) -> str:
    name = make_url(url).database
    assert name is not None, "the URL names no database"
    return name


def migrate_database(url: str) -> None:
    """Gives the database of `url` the read model's schema."""
    engine = create_database_engine(url, pool_size=1)
    try:
        migrate(engine)
    finally:
        engine.dispose()


@contextmanager
def new_database(admin_url: str, prefix: str, *, template: str | None = None) -> Iterator[str]:
    """A new database named `prefix`_<random> on the server of `admin_url` (a URL that may
    create databases), empty or a copy of database `template`; dropped (even while in use)
    when the block ends. Yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    database = sql.Identifier(name)
    create = sql.SQL("CREATE DATABASE {}").format(database)
    if template is not None:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    execute_autocommit(admin_url, create)
    try:
        yield with_database(admin_url, name)
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database)
        execute_autocommit(admin_url, drop)


def _admin_url(stack: ExitStack) -> str:
    """The benchmarks' server's admin URL, or an embedded server's that `stack` stops."""
    if (url := configured_server(ADMIN_URL_ENV)) is not None:
        return url
    data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wallet-bench-")))
    server = embedded_postgres(data_dir / "postgres")
    stack.callback(server.cleanup)
    embedded: str = server.get_uri()
    return embedded


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Yields the URL of a new database with the read model's schema on the benchmarks'
    server; drops it afterwards."""
    with ExitStack() as stack:
        url = stack.enter_context(new_database(_admin_url(stack), prefix))
        migrate_database(url)
        yield url
