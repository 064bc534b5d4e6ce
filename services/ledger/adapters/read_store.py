"""The PostgreSQL read store: balances, balance history and records for the query service.

Every answer is read in one REPEATABLE READ transaction, so its points, its opening balance
and its as_of come from the same updater pass.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any, Protocol

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services.ledger.domain.record_pages import PagePosition, RecordsFilter

# The balance before :instant (a 15-minute boundary): the running balance at the end of
# the day before, plus at most a day of buckets. Its cost does not grow with history.
# (psycopg's parameter style: these run on the driver's cursor, see PostgresReadStore.)
_BALANCE_BEFORE_SQL = """
  coalesce((SELECT balance_after FROM day_totals
            WHERE wallet_id = %(wallet_id)s AND day < %(day)s
            ORDER BY day DESC LIMIT 1), 0)
  + coalesce((SELECT sum(amount) FROM bucket_totals
              WHERE wallet_id = %(wallet_id)s AND bucket >= %(day_start)s
                AND bucket < %(instant)s), 0)
"""

# The history in one statement: the opening balance (a day row plus at most a day of
# buckets), each point's change (the sum of the buckets in [bounds[i-1], bounds[i]), which
# is point i's), and the running balance, all exact NUMERIC, written as canonical decimal
# text (trim_scale: 1.10 -> 1.1). A bucket's point is found by arithmetic where the points
# are an hour apart (UTC, and every zone that shifts by whole hours), else by a binary
# search of the bounds (width_bucket; Lord Howe's half-hour shift, say): the bounds then
# travel as epoch seconds in one float8[] literal, for as 8,761 timestamps adapting and
# sending them cost ten times the query itself. date_part gives a bucket's epoch as float8
# (exact: whole seconds far below 2^53), where extract would make a NUMERIC of each of a
# year's 35,040 buckets.
_HISTORY_SQL = f"""
    WITH {{given}}opening AS (SELECT {_BALANCE_BEFORE_SQL} AS amount),
    changes AS (
      SELECT {{point}} AS point, sum(amount) AS change
      FROM bucket_totals
      WHERE wallet_id = %(wallet_id)s AND bucket >= %(instant)s AND bucket < %(last)s
      GROUP BY point
    )
    SELECT trim_scale((SELECT amount FROM opening)
                      + sum(coalesce(c.change, 0)) OVER (ORDER BY p.point))::text AS balance,
           trim_scale(coalesce(c.change, 0))::text AS change
    FROM generate_series(1, %(points)s) AS p(point) LEFT JOIN changes c USING (point)
    ORDER BY p.point
"""  # noqa: S608 - composed of constants only
_HOURLY_HISTORY_SQL = _HISTORY_SQL.format(
    given="", point="floor((date_part('epoch', bucket) - %(first_bound)s) / 3600)::int + 1"
)
_SEARCHED_HISTORY_SQL = _HISTORY_SQL.format(
    given="given AS (SELECT CAST(%(bounds)s::text AS float8[]) AS bounds),\n",
    point="width_bucket(date_part('epoch', bucket), (SELECT bounds FROM given))",
)

_HOUR_SECONDS = 3600

_AS_OF = text("SELECT last_pass_finished_at FROM projection_status WHERE id = 1")

# A page of a wallet's records in (occurred_at, request_id) order, from the index
# records_by_occurred_at; after a page, the rows after its last one: a row comparison over
# the index's columns after wallet_id, which the equality fixes, so that the scan starts
# there. (A row comparison that also names wallet_id is no start key beside its equality:
# PostgreSQL then read every earlier row of the wallet, 66 ms at page 1,000 of a million.)
# The instants as microseconds since the epoch (exact: extract gives NUMERIC), which is
# what the answer's Timestamps are set from: as datetimes, a page of 1,000 cost more than
# its statement.
_RECORD_COLUMNS = """request_id, (extract(epoch FROM occurred_at) * 1000000)::bigint,
    trim_scale(amount)::text, (extract(epoch FROM recorded_at) * 1000000)::bigint"""
_RECORDS_SQL = f"""
    SELECT {_RECORD_COLUMNS} FROM records
    WHERE wallet_id = %(wallet_id)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
      {{after}}
    ORDER BY occurred_at, request_id
    LIMIT %(limit)s
"""  # noqa: S608 - composed of constants only
_FIRST_PAGE_SQL = _RECORDS_SQL.format(after="")
_NEXT_PAGE_SQL = _RECORDS_SQL.format(
    after="AND (occurred_at, request_id) > (%(after_time)s, %(after_id)s)"
)
_RECORD_SQL = f"""
    SELECT {_RECORD_COLUMNS} FROM records
    WHERE wallet_id = %(wallet_id)s AND request_id = %(request_id)s
"""  # noqa: S608 - composed of constants only


# SQLAlchemy's wrappers, and psycopg's own from the driver cursor the history runs on
# (a statement timeout is psycopg's QueryCanceled, an OperationalError).
_UNREACHABLE = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


class ReadStoreUnavailable(Exception):
    """PostgreSQL could not be reached or failed the read; retrying later may succeed."""


# A point's (balance, change) as canonical decimal text ("1.1", "0").
PointTotals = tuple[str, str]


@dataclass(frozen=True)
class History:
    points: list[PointTotals]
    as_of: datetime | None


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    as_of: datetime | None


@dataclass(frozen=True)
class RecordRow:
    """A record as the read model holds it: the amount as canonical decimal text, the
    instants as microseconds since the epoch (UTC)."""

    request_id: str
    occurred_at_us: int
    amount: str
    recorded_at_us: int


@dataclass(frozen=True)
class RecordsPage:
    """Up to a page of records, and whether more follow the last of them."""

    records: list[RecordRow]
    more: bool
    as_of: datetime | None


@dataclass(frozen=True)
class FoundRecord:
    """A record looked up by its key, or None where the read model holds none (yet: as of
    `as_of`)."""

    record: RecordRow | None
    as_of: datetime | None


class ReadStore(Protocol):
    def history(self, wallet_id: str, bounds: Sequence[int]) -> History: ...

    def balance(self, wallet_id: str, instant: datetime) -> Balance: ...

    def list_records(
        self, records: RecordsFilter, after: PagePosition | None, limit: int
    ) -> RecordsPage: ...

    def find_record(self, wallet_id: str, request_id: str) -> FoundRecord: ...


class PostgresReadStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def history(self, wallet_id: str, bounds: Sequence[int]) -> History:
        """Each point's totals for the points bounds[1:]: its balance (all records before
        it) and its change (records since the bound before it).

        Bounds are increasing 15-minute-aligned instants in seconds since the epoch (an
        HourGrid's bound_seconds).
        """
        statement, parameters = history_query(wallet_id, bounds)
        with _snapshot(self._engine) as connection:
            points: list[PointTotals] = _driver_rows(connection, statement, parameters)
            as_of = read_model_as_of(connection)
        return History(points=points, as_of=as_of)

    def balance(self, wallet_id: str, instant: datetime) -> Balance:
        """The sum of all records before `instant` (a 15-minute-aligned UTC instant)."""
        with _snapshot(self._engine) as connection:
            balance = _balance_before(connection, wallet_id, instant)
            as_of = read_model_as_of(connection)
        return Balance(balance=balance, as_of=as_of)

    def list_records(
        self, records: RecordsFilter, after: PagePosition | None, limit: int
    ) -> RecordsPage:
        """The first `limit` records of the filter after `after` (from the first when
        None), in (occurred_at, request_id) order."""
        parameters: dict[str, object] = {
            "wallet_id": records.wallet_id,
            "start": records.start,
            "end": records.end,
            "limit": limit + 1,  # one more tells whether another page follows
        }
        statement = _FIRST_PAGE_SQL
        if after is not None:
            statement = _NEXT_PAGE_SQL
            parameters.update(after_time=after.occurred_at, after_id=after.request_id)
        with _snapshot(self._engine) as connection:
            rows = [RecordRow(*row) for row in _driver_rows(connection, statement, parameters)]
            as_of = read_model_as_of(connection)
        return RecordsPage(records=rows[:limit], more=len(rows) > limit, as_of=as_of)

    def find_record(self, wallet_id: str, request_id: str) -> FoundRecord:
        parameters = {"wallet_id": wallet_id, "request_id": request_id}
        with _snapshot(self._engine) as connection:
            rows = [RecordRow(*row) for row in _driver_rows(connection, _RECORD_SQL, parameters)]
            as_of = read_model_as_of(connection)
        return FoundRecord(record=rows[0] if rows else None, as_of=as_of)

    def as_of(self) -> datetime | None:
        """The read model's as_of alone, as the answers report it (None: never projected).
        One single-row read; raises ReadStoreUnavailable as the answers do."""
        with _snapshot(self._engine) as connection:
            return read_model_as_of(connection)


def _driver_rows(
    connection: Connection, statement: str, parameters: Mapping[str, object]
) -> list[Any]:
    """The rows of `statement` as tuples, from the driver's own cursor: a history holds up
    to 10,000 rows and a page 1,000, and SQLAlchemy's row objects cost more than the query."""
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(statement, parameters)
        rows: list[Any] = cursor.fetchall()
        return rows


def read_model_as_of(connection: Connection) -> datetime | None:
    """An instant before which every acknowledged record is in the read model, as the
    updater's last completed pass or rebuild claimed it (never more than it read). None
    while no pass has completed."""
    as_of: datetime | None = connection.execute(_AS_OF).scalar_one_or_none()
    return as_of


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only REPEATABLE READ transaction. Losing the server becomes
    ReadStoreUnavailable; the pool's pre-ping reconnects on a later call."""
    try:
        with engine.connect() as connection:
            snapshot = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with snapshot.begin():
                yield snapshot
    except _UNREACHABLE as error:
        raise ReadStoreUnavailable(str(error)) from error


def history_query(wallet_id: str, bounds: Sequence[int]) -> tuple[str, dict[str, object]]:
    """The history statement and its parameters (psycopg style), for the driver's cursor.
    `bounds`: increasing 15-minute-aligned instants, in seconds since the epoch."""
    parameters: dict[str, object] = {
        "wallet_id": wallet_id,
        "points": len(bounds) - 1,
        "last": datetime.fromtimestamp(bounds[-1], UTC),
        **_balance_before_parameters(datetime.fromtimestamp(bounds[0], UTC)),
    }
    if list(range(bounds[0], bounds[-1] + 1, _HOUR_SECONDS)) == bounds:
        return _HOURLY_HISTORY_SQL, {**parameters, "first_bound": bounds[0]}
    return _SEARCHED_HISTORY_SQL, {**parameters, "bounds": _array_literal(bounds)}


def _array_literal(numbers: Iterable[int]) -> str:
    """PostgreSQL's text form of a one-dimensional array of numbers: {1,2,3}."""
    return "{" + ",".join(map(str, numbers)) + "}"


def _balance_before_parameters(instant: datetime) -> dict[str, object]:
    utc = instant.astimezone(UTC)
    day_start = datetime.combine(utc.date(), time(), tzinfo=UTC)
    return {"instant": utc, "day": utc.date(), "day_start": day_start}


def _balance_before(connection: Connection, wallet_id: str, instant: datetime) -> Decimal:
    parameters = {"wallet_id": wallet_id, **_balance_before_parameters(instant)}
    value = connection.exec_driver_sql(f"SELECT {_BALANCE_BEFORE_SQL}", parameters).scalar_one()
    return Decimal(value)
