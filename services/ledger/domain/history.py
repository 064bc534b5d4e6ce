"""Balance history semantics: which instants get a point, and what each point holds.

For `start`, `end` and a time zone, there is one point for every instant T with
start <= T <= end that starts an hour in that zone. A point's balance is the sum of all
records dated before T; its change is the sum of the records since the previous hour start
in that zone (so consecutive balances differ by exactly the change, also across DST jumps).
The read store sums those over the grid's boundaries.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.ledger.domain.buckets import BUCKET, ceil_to_bucket
from services.ledger.domain.errors import InvalidInput

MAX_POINTS = 10_000
_HOUR = timedelta(hours=1)
_HOUR_SECONDS = 3600
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
    """The points of one history request, in UTC, with the zone's UTC offset at each, and
    the hour start just before the first.

    `boundaries` = [previous, *points]: the i-th point's change covers
    [boundaries[i], boundaries[i+1]); its balance is the sum of all records before it.
    """

    zone: ZoneInfo
    previous: datetime
    points: list[datetime]
    offsets: list[timedelta]
    # The same points and offsets as whole seconds (since the epoch; east of UTC), which is
    # what an answer carries: kept while the grid is built, so that nothing converts them
    # again for each of a year's 8,760 points.
    point_seconds: list[int]
    offset_seconds: list[int]

    @property
    def boundaries(self) -> list[datetime]:
        return [self.previous, *self.points]


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    """The zone's UTC offset at `instant`. Refuses offsets that are not a multiple of 15
    minutes (local mean time before a zone adopted standard time, e.g. Africa/Monrovia until
    1972): hours there start between buckets, so no exact answer exists."""
    offset = instant.astimezone(zone).utcoffset()
    if offset is None or offset % BUCKET:
        raise InvalidInput.single(
            "time_zone",
            f"{zone.key} had a UTC offset of {offset} around {instant:%Y-%m-%d}, "
            "which hourly history cannot answer exactly",
        )
    return offset


def _is_hour_start(instant: datetime, offset: timedelta) -> bool:
    return (instant + offset).minute == 0


def _next_hour_start(after: datetime, zone: ZoneInfo) -> tuple[datetime, timedelta]:
    """The first hour start in `zone` after the quarter hour `after`, and its offset.

    Every real UTC offset is a multiple of 15 minutes, so every hour start is a UTC quarter
    hour: stepping through quarter hours finds them all, across any DST change."""
    instant = after + BUCKET
    offset = _offset(instant, zone)
    while not _is_hour_start(instant, offset):
        instant += BUCKET
        offset = _offset(instant, zone)
    return instant, offset


def hour_grid(start: datetime, end: datetime, zone: ZoneInfo) -> HourGrid:
    """The hour starts in `zone` within [start, end], or InvalidInput when the range is
    reversed or would give more than MAX_POINTS points."""
    if start > end:
        raise InvalidInput.single("start", "must not be after end")
    for field, instant in (("start", start), ("end", end)):
        if not _FIRST_YEAR <= instant.year <= _LAST_YEAR:
            raise InvalidInput.single(field, f"must be within the years {_FIRST_YEAR}-{_LAST_YEAR}")
    if end - start > _MAX_RANGE:
        raise InvalidInput.single("end", f"the range gives more than {MAX_POINTS} points")
    previous = ceil_to_bucket(start) - BUCKET
    while not _is_hour_start(previous, _offset(previous, zone)):
        previous -= BUCKET
    points: list[datetime] = []
    offsets: list[timedelta] = []
    point_seconds: list[int] = []
    offset_seconds: list[int] = []
    instant, offset = _next_hour_start(previous, zone)
    seconds, offset_second = int(instant.timestamp()), int(offset.total_seconds())
    while instant <= end:
        points.append(instant)
        offsets.append(offset)
        point_seconds.append(seconds)
        offset_seconds.append(offset_second)
        # One hour on is the next hour start unless the offset changed in between (zones
        # never change twice within an hour); only then step through the quarter hours. An
        # unchanged offset was checked by _offset already: inline, this test is the loop's
        # only call into the zone (a year is 8,760 of them).
        later = instant + _HOUR
        if later.astimezone(zone).utcoffset() == offset:
            instant = later
            seconds += _HOUR_SECONDS
        else:
            instant, offset = _next_hour_start(instant, zone)
            seconds, offset_second = int(instant.timestamp()), int(offset.total_seconds())
    if len(points) > MAX_POINTS:
        raise InvalidInput.single("end", f"the range gives more than {MAX_POINTS} points")
    return HourGrid(zone, previous, points, offsets, point_seconds, offset_seconds)
