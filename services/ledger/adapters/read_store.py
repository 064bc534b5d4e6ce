"""The PostgreSQL read store: balances and balance history for the query service.

Every answer is read in one REPEATABLE READ transaction, so its points, its opening balance
and its as_of come from the same updater pass.
"""

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Protocol

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.types import DateTime

_BALANCE_BEFORE = text(
    """
    SELECT
      coalesce((SELECT balance_after FROM day_totals
                WHERE wallet_id = :wallet_id AND day < :day
                ORDER BY day DESC LIMIT 1), 0)
      + coalesce((SELECT sum(amount) FROM bucket_totals
                  WHERE wallet_id = :wallet_id AND bucket >= :day_start AND bucket < :instant), 0)
    """
)

# width_bucket gives i for a bucket in [bounds[i], bounds[i+1]) (1-based), which is the
# index of the point whose change that bucket belongs to.
_CHANGES = text(
    """
    SELECT width_bucket(bucket, :bounds) AS point, sum(amount) AS change
    FROM bucket_totals
    WHERE wallet_id = :wallet_id AND bucket >= :first AND bucket < :last
    GROUP BY point
    """
).bindparams(bindparam("bounds", type_=ARRAY(DateTime(timezone=True))))

_AS_OF = text("SELECT last_pass_finished_at FROM projection_status WHERE id = 1")


_UNREACHABLE = (OperationalError, InterfaceError, PoolTimeoutError)


class ReadStoreUnavailable(Exception):
    """PostgreSQL could not be reached or failed the read; retrying later may succeed."""


@dataclass(frozen=True)
class History:
    opening: Decimal
    changes: list[Decimal]
    as_of: datetime | None


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    as_of: datetime | None


class ReadStore(Protocol):
    def history(self, wallet_id: str, boundaries: Sequence[datetime]) -> History: ...

    def balance(self, wallet_id: str, instant: datetime) -> Balance: ...


class PostgresReadStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def history(self, wallet_id: str, boundaries: Sequence[datetime]) -> History:
        """The balance before boundaries[0] and the sum of each [boundaries[i], boundaries[i+1]).

        Boundaries must be increasing 15-minute-aligned UTC instants.
        """
        with self._snapshot() as connection:
            opening = _balance_before(connection, wallet_id, boundaries[0])
            sums = {
                point: change
                for point, change in connection.execute(
                    _CHANGES,
                    {
                        "wallet_id": wallet_id,
                        "bounds": list(boundaries),
                        "first": boundaries[0],
                        "last": boundaries[-1],
                    },
                )
            }
            as_of = connection.execute(_AS_OF).scalar_one_or_none()
        changes = [sums.get(point, Decimal(0)) for point in range(1, len(boundaries))]
        return History(opening=opening, changes=changes, as_of=as_of)

    def balance(self, wallet_id: str, instant: datetime) -> Balance:
        """The sum of all records before `instant` (a 15-minute-aligned UTC instant)."""
        with self._snapshot() as connection:
            balance = _balance_before(connection, wallet_id, instant)
            as_of = connection.execute(_AS_OF).scalar_one_or_none()
        return Balance(balance=balance, as_of=as_of)

    def _snapshot(self) -> AbstractContextManager[Connection]:
        return _snapshot(self._engine)


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


def _balance_before(connection: Connection, wallet_id: str, instant: datetime) -> Decimal:
    utc = instant.astimezone(UTC)
    day_start = datetime.combine(utc.date(), time(), tzinfo=UTC)
    value = connection.execute(
        _BALANCE_BEFORE,
        {"wallet_id": wallet_id, "day": utc.date(), "day_start": day_start, "instant": utc},
    ).scalar_one()
    return Decimal(value)
