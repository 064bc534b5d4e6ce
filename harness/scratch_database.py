"""A throwaway, migrated read model database for one benchmark run, dropped at the end.

The server is $WALLET_BENCH_DATABASE_URL (an admin URL that may create databases), or an
embedded one (pgserver) when that server cannot be reached.
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


def _admin_url(stack: ExitStack) -> str:
    """The configured server's admin URL, or an embedded server's that `stack` stops."""
    url = os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)
    if reachable(url):
        return url
    data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wallet-bench-")))
    server = embedded_postgres(data_dir / "postgres")
    stack.callback(server.cleanup)
    embedded: str = server.get_uri()
    return embedded


def execute_autocommit(url: str, statement: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Yields the URL of a new database with the read model's schema; drops it afterwards."""
    with ExitStack() as stack:
        admin_url = _admin_url(stack)
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        database = sql.Identifier(name)
        execute_autocommit(admin_url, sql.SQL("CREATE DATABASE {}").format(database))
        stack.callback(
            execute_autocommit,
            admin_url,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database),
        )
        url = _with_database(admin_url, name)
        engine = create_database_engine(url, pool_size=1)
        migrate(engine)
        engine.dispose()
        yield url
