"""Balance history semantics: which instants get a point, and what each point holds.

For `start`, `end` and a time zone, there is one point for every instant T with
start <= T <= end that starts an hour in that zone. A point's balance is the sum of all
records dated before T; its change is the sum of the records since the previous hour start
in that zone (so consecutive balances differ by exactly the change, also across DST jumps).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.ledger.domain.buckets import BUCKET, ceil_to_bucket
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.money import exact_arithmetic

MAX_POINTS = 10_000
_HOUR = timedelta(hours=1)
# A zone has at most ~1 hour start per hour, plus one per repeated DST hour; a range longer
# than this cannot be within the limit and is refused before any point is computed.
_MAX_RANGE = _HOUR * (MAX_POINTS + 48)
# IANA names: up to three path parts of letters, digits, '_', '+', '-' (America/Argentina/Salta).
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2}")
# Keeps the search for the hour start before `start` clear of datetime's limits.
_FIRST_YEAR, _LAST_YEAR = 1900, 9998


def parse_time_zone(name: str, field: str = "time_zone") -> ZoneInfo:
    """The IANA zone `name`; empty means UTC."""
    if not name:
        return ZoneInfo("UTC")
    if not _ZONE_NAME.fullmatch(name):
        raise InvalidInput.single(field, f"unknown IANA time zone {name[:64]!r}")
    # OSError: a name the file system refuses (too long, say) before zoneinfo can say no.
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise InvalidInput.single(field, f"unknown IANA time zone {name[:64]!r}") from error


@dataclass(frozen=True)
class HourGrid:
    """The points of one history request, in UTC, and the hour start just before the first.

    `boundaries` = [previous, *points]: the i-th point's change covers
    [boundaries[i], boundaries[i+1]).
    """

    zone: ZoneInfo
    previous: datetime
    points: list[datetime]

    @property
    def boundaries(self) -> list[datetime]:
        return [self.previous, *self.points]


@dataclass(frozen=True)
class BalancePoint:
    time: datetime
    balance: Decimal
    change: Decimal
    utc_offset: timedelta


def _is_hour_start(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether `instant` (a UTC quarter hour) starts an hour in `zone`. Refuses instants
    where the zone's offset is not a multiple of 15 minutes (local mean time before a zone
    adopted standard time, e.g. Africa/Monrovia until 1972): their hours start between
    buckets, so no exact answer exists."""
    local = instant.astimezone(zone)
    offset = local.utcoffset()
    if offset is None or offset % BUCKET:
        raise InvalidInput.single(
            "time_zone",
            f"{zone.key} had a UTC offset of {offset} around {instant:%Y-%m-%d}, "
            "which hourly history cannot answer exactly",
        )
    return local.minute == 0 and local.second == 0 and local.microsecond == 0


def hour_grid(start: datetime, end: datetime, zone: ZoneInfo) -> HourGrid:
    """The hour starts in `zone` within [start, end], or InvalidInput when the range is
    reversed or would give more than MAX_POINTS points.

    Every real UTC offset is a multiple of 15 minutes, so every hour start is a UTC quarter
    hour: stepping through quarter hours finds them all, across any DST change.
    """
    if start > end:
        raise InvalidInput.single("start", "must not be after end")
    for field, instant in (("start", start), ("end", end)):
        if not _FIRST_YEAR <= instant.year <= _LAST_YEAR:
            raise InvalidInput.single(field, f"must be within the years {_FIRST_YEAR}-{_LAST_YEAR}")
    if end - start > _MAX_RANGE:
        raise InvalidInput.single("end", f"the range gives more than {MAX_POINTS} points")
    previous = ceil_to_bucket(start) - BUCKET
    while not _is_hour_start(previous, zone):
        previous -= BUCKET
    points: list[datetime] = []
    instant = previous + BUCKET
    while instant <= end:
        if _is_hour_start(instant, zone):
            points.append(instant)
        instant += BUCKET
    if len(points) > MAX_POINTS:
        raise InvalidInput.single("end", f"the range gives more than {MAX_POINTS} points")
    return HourGrid(zone=zone, previous=previous, points=points)


def balance_points(
    grid: HourGrid, opening: Decimal, changes: Sequence[Decimal]
) -> list[BalancePoint]:
    """Points from the balance at `grid.previous` and each point's change (same order)."""
    points = []
    balance = opening
    for time, change in zip(grid.points, changes, strict=True):
        with exact_arithmetic():
            balance += change
        offset = time.astimezone(grid.zone).utcoffset()
        assert offset is not None
        points.append(BalancePoint(time=time, balance=balance, change=change, utc_offset=offset))
    return points
