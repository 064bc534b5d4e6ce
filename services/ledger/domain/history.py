"""Balance history semantics: which instants get a point, and what each point holds.

For `start`, `end` and a time zone, there is one point for every instant T with
start <= T <= end that starts an hour in that zone. A point's balance is the sum of all
records dated before T; its change is the sum of the records since the previous hour start
in that zone (so consecutive balances differ by exactly the change, also across DST jumps).
The read store sums those over the grid's boundaries.
"""

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.instants import EPOCH

MAX_POINTS = 10_000
_HOUR_SECONDS = 3600
_QUARTER_SECONDS = 900
# A zone has at most ~1 hour start per hour, plus one per repeated DST hour; a range longer
# than this cannot be within the limit and is refused before any point is computed.
_MAX_RANGE = timedelta(hours=MAX_POINTS + 48)
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
    """The points of one history request in epoch seconds, with the zone's UTC offset at
    each, and the hour start just before the first.

    `bound_seconds` = [previous, *points]: the i-th point's change covers
    [bounds[i], bounds[i+1]); its balance is the sum of all records before it. Whole
    seconds are what an answer carries and what the read store sends, so a year's 8,760
    points are never made into datetimes.
    """

    zone: ZoneInfo
    bound_seconds: list[int]
    offset_seconds: list[int]  # east of UTC, one per point

    @property
    def point_seconds(self) -> list[int]:
        return self.bound_seconds[1:]

    @property
    def previous(self) -> datetime:
        return _utc(self.bound_seconds[0])

    @property
    def points(self) -> list[datetime]:
        return [_utc(seconds) for seconds in self.point_seconds]

    @property
    def boundaries(self) -> list[datetime]:
        return [_utc(seconds) for seconds in self.bound_seconds]

    @property
    def offsets(self) -> list[timedelta]:
        return [timedelta(seconds=seconds) for seconds in self.offset_seconds]


_SECOND = timedelta(seconds=1)


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _offset_at(seconds: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(seconds, zone).utcoffset()
    assert offset is not None, "a ZoneInfo always has an offset"
    return int(offset.total_seconds())


def _year_start(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


@functools.lru_cache(maxsize=4096)
def _stretches(zone: ZoneInfo, year: int) -> tuple[tuple[int, int, int], ...]:
    """The zone's UTC offset through the UTC year `year`, as (from, until, offset) in
    seconds: the offset at every second in [from, until), the stretches covering the year.
    A zone's offsets never change, so each zone and year is looked up hour by hour once
    (8,760 lookups, 3.5-6 ms) and not per request.

    Zones never change their offset twice within an hour (in tzdata since 1900 no two
    changes are even two hours apart), so an hourly look finds every change, and a binary
    search of the changed hour its second (local mean time changed at odd seconds)."""
    start, end = _year_start(year), _year_start(year + 1)
    offset = _offset_at(start, zone)
    changes = [(start, offset)]
    for hour in range(start + _HOUR_SECONDS, end + 1, _HOUR_SECONDS):
        if _offset_at(hour, zone) == offset:
            continue
        before, changed = hour - _HOUR_SECONDS, hour  # the offset changed in (before, changed]
        while changed - before > 1:
            middle = (before + changed) // 2
            if _offset_at(middle, zone) == offset:
                before = middle
            else:
                changed = middle
        offset = _offset_at(changed, zone)
        if changed < end:  # a change at the next year's start is that year's first stretch
            changes.append((changed, offset))
    untils = [since for since, _ in changes[1:]] + [end]
    return tuple(
        (since, until, offset) for (since, offset), until in zip(changes, untils, strict=True)
    )


def _check_hour_start(zone: ZoneInfo, offset: int, hour_start: int) -> None:
    """Refuses an hour start that falls between buckets: one of an offset that is not a
    multiple of 15 minutes (local mean time before a zone adopted standard time, e.g.
    Africa/Monrovia until 1972), for which no exact answer exists."""
    if offset % _QUARTER_SECONDS:
        sign, size = "-" if offset < 0 else "+", timedelta(seconds=abs(offset))
        raise InvalidInput.single(
            "time_zone",
            f"{zone.key} had a UTC offset of {sign}{size} around {_utc(hour_start):%Y-%m-%d}, "
            "which hourly history cannot answer exactly",
        )


def _hour_starts(zone: ZoneInfo, low: int, high: int) -> tuple[list[int], list[int]]:
    """The hour starts in `zone` within [low, high] (epoch seconds), and the zone's offset
    at each."""
    starts: list[int] = []
    offsets: list[int] = []
    for year in range(_utc(low).year, _utc(high).year + 1):
        for since, until, offset in _stretches(zone, year):
            if since > high or until <= low:
                continue
            first = max(since, low)
            hours = range(
                first + (-(first + offset)) % _HOUR_SECONDS, min(until, high + 1), _HOUR_SECONDS
            )
            if hours:
                _check_hour_start(zone, offset, hours[0])
            starts.extend(hours)
            offsets.extend([offset] * len(hours))
    return starts, offsets


def _hour_start_before(zone: ZoneInfo, instant: int) -> int:
    """The last hour start in `zone` before `instant` (epoch seconds): the stretches before
    it are searched backwards, and only as far as that hour start (an offset further back
    that could not be answered is none of this range's business)."""
    year = _utc(instant - 1).year
    while True:
        for since, until, offset in reversed(_stretches(zone, year)):
            if since >= instant:
                continue
            latest = min(until, instant) - 1
            hour_start = latest - (latest + offset) % _HOUR_SECONDS
            if hour_start >= since:
                _check_hour_start(zone, offset, hour_start)
                return hour_start
        year -= 1


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
    # Hour starts are whole seconds (offsets are), so the range's whole seconds hold them.
    first = -((EPOCH - start) // _SECOND)
    last = (end - EPOCH) // _SECOND
    points, offsets = _hour_starts(zone, first, last)
    if len(points) > MAX_POINTS:
        raise InvalidInput.single("end", f"the range gives more than {MAX_POINTS} points")
    return HourGrid(zone, [_hour_start_before(zone, first), *points], offsets)
