"""A brute-force model of balance history, written from the fixed semantics and sharing no
code with the product: it steps through every UTC minute instead of 15-minute buckets, and
sums raw records instead of stored totals.

- The points are every instant T with start <= T <= end at which the zone's wall clock
  reads hh:00:00.
- balance(T) is the sum of the records dated before T; change(T) is the sum of the records
  in [previous hour start, T).

Stepping by minutes is exact for every zone whose offsets are whole minutes, which holds for
all tzdata zones since 1980 (earlier local mean times have offsets with seconds).
"""

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
# Longer than any gap between two hour starts in tzdata (Pacific/Apia skipped a whole day).
_LONGEST_GAP = timedelta(days=3)


@dataclass(frozen=True)
class ExpectedPoint:
    time: datetime
    balance: Decimal
    change: Decimal
    utc_offset: timedelta


@dataclass(frozen=True)
class RawRecord:
    wallet_id: str
    occurred_at: datetime
    amount: Decimal


def starts_an_hour(instant: datetime, zone: ZoneInfo) -> bool:
    local = instant.astimezone(zone)
    return (local.minute, local.second, local.microsecond) == (0, 0, 0)


def _first_minute_at_or_after(instant: datetime) -> datetime:
    floor = instant.replace(second=0, microsecond=0)
    return floor if floor == instant else floor + MINUTE


def hour_starts(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every T with start <= T <= end that starts an hour in `zone`, minute by minute."""
    found = []
    minute = _first_minute_at_or_after(start)
    while minute <= end:
        if starts_an_hour(minute, zone):
            found.append(minute)
        minute += MINUTE
    return found


def hour_start_before(instant: datetime, zone: ZoneInfo) -> datetime:
    """The latest hour start in `zone` strictly before `instant`."""
    minute = _first_minute_at_or_after(instant) - MINUTE
    limit = instant - _LONGEST_GAP
    while not starts_an_hour(minute, zone):
        minute -= MINUTE
        assert minute > limit, f"no hour start in {zone} within {_LONGEST_GAP} of {instant}"
    return minute


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """A sum that raises rather than rounds (the default context keeps only 28 digits)."""
    with decimal.localcontext() as context:
        context.prec = 200
        context.traps[decimal.Inexact] = True
        return sum(values, Decimal(0))


def expected_history(
    records: Iterable[RawRecord], wallet_id: str, start: datetime, end: datetime, zone: ZoneInfo
) -> list[ExpectedPoint]:
    mine = [record for record in records if record.wallet_id == wallet_id]
    points = []
    for time in hour_starts(start, end, zone):
        previous = hour_start_before(time, zone)
        offset = time.astimezone(zone).utcoffset()
        assert offset is not None
        points.append(
            ExpectedPoint(
                time=time,
                balance=exact_sum(r.amount for r in mine if r.occurred_at < time),
                change=exact_sum(r.amount for r in mine if previous <= r.occurred_at < time),
                utc_offset=offset,
            )
        )
    return points


def expected_balance(records: Iterable[RawRecord], wallet_id: str, before: datetime) -> Decimal:
    return exact_sum(
        r.amount for r in records if r.wallet_id == wallet_id and r.occurred_at < before
    )
