"""PostgreSQL connections for the read model: SQLAlchemy 2 engines on psycopg 3."""

from typing import Any

import boto3
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def sqlalchemy_url(database_url: str) -> str:
    """postgresql://... (as libpq, Aurora and pgserver write it) with the psycopg 3 driver."""
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def create_database_engine(
    database_url: str,
    pool_size: int = 5,
    statement_timeout_ms: int | None = None,
    *,
    iam_auth: bool = False,
) -> Engine:
    """An engine whose pool checks each connection before use, so a restarted server is
    reconnected to without restarting the service. TCP keepalives and a user timeout make
    a server that stops answering (rather than refusing) an error within seconds, not a
    thread stuck forever; `statement_timeout_ms` bounds each statement.

    Every session's time zone is UTC, whatever the server, database, role, URL or PGTZ
    say: timestamptz values come back as UTC datetimes and SQL's dates are UTC days (in
    another zone, the datetimes of a repeated DST hour compare unequal to the same instants
    in UTC). JIT compilation is off: every statement here takes milliseconds, and
    compiling one (the history's, whose row estimates pass jit_above_cost) took 12 ms.

    With `iam_auth`, every new connection signs in with a fresh RDS IAM token as its
    password (see RdsIamToken)."""
    connect_args: dict[str, object] = {
        "connect_timeout": 3,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 15_000,
    }
    url = make_url(sqlalchemy_url(database_url))
    if statement_timeout_ms is not None:
        # Connection arguments replace the URL's own `options`: keep those too.
        options = [
            *url.normalized_query.get("options", ()),
            f"-c statement_timeout={statement_timeout_ms}",
        ]
        connect_args["options"] = " ".join(options)
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args=connect_args,
    )
    event.listen(engine, "connect", _configure_session)
    if iam_auth:
        event.listen(engine, "do_connect", RdsIamToken())
    return engine


class RdsIamToken:
    """A `do_connect` hook that makes each new connection's password a fresh RDS IAM
    authentication token for the host, port and user it connects as.

    A token is valid for 15 minutes but checked only when a connection is made, so pooled
    connections outlive theirs, and a connection made at any later time (a failover, a
    dropped connection, a larger pool) signs a new one with the task role's current
    credentials: nothing long-lived can expire or be rotated under the process. Signing is
    local (no AWS call); the region is AWS_DEFAULT_REGION's, checked here, at start."""

    def __init__(self) -> None:
        self._rds = boto3.client("rds")

    def __call__(
        self, _dialect: object, _record: object, _args: object, params: dict[str, Any]
    ) -> None:
        params["password"] = self._rds.generate_db_auth_token(
            DBHostname=params["host"],
            Port=int(params.get("port", 5432)),
            DBUsername=params["user"],
            Region=self._rds.meta.region_name,
        )


# Run on every new connection (after libpq applied PGTZ and `options`, either of which
# could name another time zone); see create_database_engine.
SESSION_SETTINGS = ("SET TIME ZONE 'UTC'", "SET jit = off")


def _configure_session(connection: Any, _record: object) -> None:
    for statement in SESSION_SETTINGS:
        connection.execute(statement)
    connection.commit()
