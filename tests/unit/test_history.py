"""Balance history in the domain: which instants get a point in which zone (hour_grid), what
which zone names are accepted (parse_time_zone)."""

import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.history import (
    MAX_POINTS,
    HourGrid,
    hour_grid,
    parse_time_zone,
)
from tests.history_oracle import hour_start_before, hour_starts

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
KOLKATA = ZoneInfo("Asia/Kolkata")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
HOUR = timedelta(hours=1)
ZERO = Decimal(0)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def hours(*values: float) -> list[timedelta]:
    return [timedelta(hours=value) for value in values]


def wall_clock(grid: HourGrid) -> list[str]:
    """Each point as the zone's wall clock shows it, with its offset."""
    return [point.astimezone(grid.zone).strftime("%H:%M %z") for point in grid.points]


def violation(error: pytest.ExceptionInfo[InvalidInput]) -> tuple[str, str]:
    assert len(error.value.violations) == 1, error.value.violations
    found = error.value.violations[0]
    return found.field, found.description


def names_the_limit(description: str) -> bool:
    return "10000" in description or "10,000" in description


# --- which instants get a point -----------------------------------------------------------


def test_design_example_utc_hours_are_points_and_previous_is_the_hour_before() -> None:
    grid = hour_grid(utc(2019, 10, 5, 12), utc(2019, 10, 5, 14), UTC_ZONE)
    assert grid.points == [utc(2019, 10, 5, 12), utc(2019, 10, 5, 13), utc(2019, 10, 5, 14)]
    assert grid.previous == utc(2019, 10, 5, 11)
    assert grid.boundaries == [grid.previous, *grid.points]
    assert grid.offsets == [timedelta(0)] * 3


def test_a_record_at_exactly_an_hour_start_counts_at_the_next_point() -> None:
    grid = hour_grid(utc(2024, 5, 1, 13), utc(2024, 5, 1, 15), UTC_ZONE)
    # The i-th point's change covers [boundaries[i], boundaries[i+1]), so 14:00:00 falls in
    # the hour that ends at 15:00, and 13:59:59.999999 in the hour that ends at 14:00.
    assert grid.boundaries == [
        utc(2024, 5, 1, 12),
        utc(2024, 5, 1, 13),
        utc(2024, 5, 1, 14),
        utc(2024, 5, 1, 15),
    ]


def test_new_york_autumn_night_has_two_one_oclock_points_and_loses_none() -> None:
    # 2024-11-03: 02:00 EDT (06:00Z) falls back to 01:00 EST.
    grid = hour_grid(utc(2024, 11, 3, 3), utc(2024, 11, 3, 8), NEW_YORK)
    assert grid.points == [utc(2024, 11, 3, hour) for hour in range(3, 9)]
    assert wall_clock(grid) == [
        "23:00 -0400",
        "00:00 -0400",
        "01:00 -0400",
        "01:00 -0500",
        "02:00 -0500",
        "03:00 -0500",
    ]
    assert grid.offsets == hours(-4, -4, -4, -5, -5, -5)


def test_new_york_autumn_night_by_local_range() -> None:
    start = datetime(2024, 11, 3, 0, 0, tzinfo=NEW_YORK)  # 04:00Z
    end = datetime(2024, 11, 3, 3, 0, tzinfo=NEW_YORK)  # 08:00Z
    grid = hour_grid(start, end, NEW_YORK)
    assert len(grid.points) == 5
    assert [p.astimezone(NEW_YORK).hour for p in grid.points] == [0, 1, 1, 2, 3]
    assert grid.previous == utc(2024, 11, 3, 3)


def test_new_york_spring_night_has_no_two_oclock_point() -> None:
    # 2024-03-10: 02:00 EST (07:00Z) jumps to 03:00 EDT.
    grid = hour_grid(utc(2024, 3, 10, 5), utc(2024, 3, 10, 9), NEW_YORK)
    assert wall_clock(grid) == [
        "00:00 -0500",
        "01:00 -0500",
        "03:00 -0400",
        "04:00 -0400",
        "05:00 -0400",
    ]
    # No UTC time is lost: the 03:00 EDT point's hour is [06:00Z, 07:00Z).
    assert grid.points == [utc(2024, 3, 10, hour) for hour in range(5, 10)]
    assert grid.offsets == hours(-5, -5, -4, -4, -4)


@pytest.mark.parametrize(
    ("zone", "minute", "offset"),
    [(KATHMANDU, 15, timedelta(hours=5, minutes=45)), (KOLKATA, 30, timedelta(hours=5.5))],
)
def test_quarter_and_half_hour_zones_have_exact_boundaries(
    zone: ZoneInfo, minute: int, offset: timedelta
) -> None:
    grid = hour_grid(utc(2024, 1, 1, 0), utc(2024, 1, 1, 3), zone)
    assert grid.points == [utc(2024, 1, 1, hour, minute) for hour in range(3)]
    assert grid.previous == utc(2023, 12, 31, 23, minute)
    # 00:15Z is 06:00 in Kathmandu; 00:30Z is 06:00 in Kolkata.
    assert [p.astimezone(zone).strftime("%H:%M") for p in grid.points] == [
        "06:00",
        "07:00",
        "08:00",
    ]
    assert grid.offsets == [offset] * 3


def test_lord_howe_autumn_half_hour_fall_back() -> None:
    # 2024-04-07 02:00 +11:00 (15:00Z) falls back to 01:30 +10:30: a 90-minute hour.
    grid = hour_grid(utc(2024, 4, 6, 12, 30), utc(2024, 4, 6, 17), LORD_HOWE)
    assert grid.points == [
        utc(2024, 4, 6, 13),
        utc(2024, 4, 6, 14),
        utc(2024, 4, 6, 15, 30),
        utc(2024, 4, 6, 16, 30),
    ]
    assert wall_clock(grid) == ["00:00 +1100", "01:00 +1100", "02:00 +1030", "03:00 +1030"]
    assert grid.offsets == hours(11, 11, 10.5, 10.5)


def test_lord_howe_spring_half_hour_jump() -> None:
    # 2024-10-06 02:00 +10:30 (15:30Z) jumps to 02:30 +11:00: there is no 02:00.
    grid = hour_grid(utc(2024, 10, 5, 13), utc(2024, 10, 5, 17), LORD_HOWE)
    assert grid.points == [
        utc(2024, 10, 5, 13, 30),
        utc(2024, 10, 5, 14, 30),
        utc(2024, 10, 5, 16),
        utc(2024, 10, 5, 17),
    ]
    assert wall_clock(grid) == ["00:00 +1030", "01:00 +1030", "03:00 +1100", "04:00 +1100"]
    assert grid.previous == utc(2024, 10, 5, 12, 30)


def test_unaligned_start_and_end() -> None:
    grid = hour_grid(
        datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC),
        datetime(2024, 5, 1, 15, 59, 59, 999999, tzinfo=UTC),
        UTC_ZONE,
    )
    assert grid.points == [utc(2024, 5, 1, 13), utc(2024, 5, 1, 14), utc(2024, 5, 1, 15)]
    # The first point's change covers its whole hour, also the part before `start`.
    assert grid.previous == utc(2024, 5, 1, 12)


def test_start_just_after_an_hour_start_excludes_it() -> None:
    grid = hour_grid(utc(2024, 5, 1, 14, 0, 0, 1), utc(2024, 5, 1, 15), UTC_ZONE)
    assert grid.points == [utc(2024, 5, 1, 15)]
    assert grid.previous == utc(2024, 5, 1, 14)


@pytest.mark.parametrize(
    ("zone", "instant"),
    [(UTC_ZONE, utc(2024, 5, 1, 14)), (KATHMANDU, utc(2024, 5, 1, 18, 15))],
)
def test_start_equal_to_end_on_an_hour_start_gives_one_point(
    zone: ZoneInfo, instant: datetime
) -> None:
    grid = hour_grid(instant, instant, zone)
    assert grid.points == [instant]
    assert grid.previous == instant - HOUR


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        (UTC_ZONE, utc(2024, 5, 1, 14, 0, 0, 1), datetime(2024, 5, 1, 14, 59, 59, 999999, UTC)),
        (UTC_ZONE, utc(2024, 5, 1, 14, 30), utc(2024, 5, 1, 14, 30)),
        (KATHMANDU, utc(2024, 5, 1, 18, 16), utc(2024, 5, 1, 19, 14)),
        (KOLKATA, utc(2024, 5, 1, 18), utc(2024, 5, 1, 18, 29, 59)),
    ],
)
def test_range_without_an_hour_start_gives_no_points(
    zone: ZoneInfo, start: datetime, end: datetime
) -> None:
    grid = hour_grid(start, end, zone)
    assert grid.points == []
    assert grid.offsets == []


# --- limits and invalid input -------------------------------------------------------------


def test_exactly_max_points_is_allowed() -> None:
    assert MAX_POINTS == 10_000
    start = utc(2024, 1, 1)
    grid = hour_grid(start, start + (MAX_POINTS - 1) * HOUR, UTC_ZONE)
    assert len(grid.points) == MAX_POINTS
    assert grid.points[-1] == start + (MAX_POINTS - 1) * HOUR


@pytest.mark.parametrize("zone", [UTC_ZONE, KATHMANDU, NEW_YORK])
def test_one_point_more_than_max_is_refused_naming_the_limit(zone: ZoneInfo) -> None:
    first = utc(2024, 1, 1, 0, 15) if zone is KATHMANDU else utc(2024, 1, 1)
    # In New York this range crosses a spring (one point fewer) and an autumn (one more).
    with pytest.raises(InvalidInput) as error:
        hour_grid(first, first + MAX_POINTS * HOUR, zone)
    field, description = violation(error)
    assert field in {"start", "end"}
    assert names_the_limit(description), description


def test_a_range_of_a_century_is_refused_naming_the_limit() -> None:
    with pytest.raises(InvalidInput) as error:
        hour_grid(utc(1950, 1, 1), utc(2050, 1, 1), NEW_YORK)
    assert names_the_limit(violation(error)[1])


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc(2024, 5, 1, 15), utc(2024, 5, 1, 14)),
        (utc(2024, 5, 1, 14, 0, 0, 1), utc(2024, 5, 1, 14)),
    ],
)
def test_start_after_end_is_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(InvalidInput) as error:
        hour_grid(start, end, UTC_ZONE)
    assert violation(error)[0] == "start"


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus_Mons",
        "UTC ",
        "Europe/London/x",
        "America",
        "Europe/",
        "../etc/passwd",
        "/etc/localtime",
        ".",
        "zone.tab",
        "a" * 5000,
        "Europe/London\x00",
        # Deep paths make the tzdata package fallback recurse (RecursionError).
        "a/" * 400 + "b",
    ],
    ids=lambda name: repr(name)[:24],
)
def test_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_time_zone(name)
    assert violation(error)[0] == "time_zone"


@given(st.text(max_size=300))
@example("a/" * 400 + "b")
@example("Europe/../Europe/London")
@settings(max_examples=200)
def test_any_time_zone_name_is_a_zone_or_invalid_input(name: str) -> None:
    fields: list[str] = []
    try:
        assert isinstance(parse_time_zone(name), ZoneInfo)
    except InvalidInput as error:
        fields = [v.field for v in error.violations]
    assert fields in ([], ["time_zone"])


def test_empty_time_zone_is_utc() -> None:
    zone = parse_time_zone("")
    assert zone.key == "UTC"
    grid = hour_grid(utc(2024, 5, 1, 9, 30), utc(2024, 5, 1, 11), zone)
    assert grid.points == [utc(2024, 5, 1, 10), utc(2024, 5, 1, 11)]
    assert grid.offsets == [timedelta(0)] * 2


def test_every_iana_zone_is_accepted() -> None:
    names = sorted(zoneinfo.available_timezones())
    assert {"Asia/Kathmandu", "America/Argentina/Buenos_Aires", "Etc/GMT+5"} <= set(names)
    refused = []
    for name in names:
        try:
            assert parse_time_zone(name).key == name
        except InvalidInput:
            refused.append(name)
    assert refused == []


@pytest.mark.timeout(10)
def test_zone_with_a_local_mean_time_offset_is_answered_or_refused_promptly() -> None:
    """Africa/Monrovia kept -00:44:30 until 1972: its hours start at hh:44:30Z, which no
    15-minute bucket boundary matches. Exact points or INVALID_ARGUMENT are both fine; a
    silently wrong answer, another error or a minute of CPU are not."""
    zone = ZoneInfo("Africa/Monrovia")
    try:
        grid = hour_grid(utc(1971, 6, 1), utc(1971, 6, 1, 5), zone)
    except InvalidInput:
        return
    assert grid.points == [utc(1971, 6, 1, hour, 44, 30) for hour in range(5)]


@pytest.mark.parametrize(
    ("zone", "start", "end", "previous"),
    [
        # -10:40 until 10:40Z that day, then -10:00.
        ("Pacific/Kiritimati", utc(1979, 10, 1, 12), utc(1979, 10, 1, 14), utc(1979, 10, 1, 11)),
        # -00:44:30 until 00:44:30Z that day, then UTC.
        ("Africa/Monrovia", utc(1972, 1, 7, 2), utc(1972, 1, 7, 4), utc(1972, 1, 7, 1)),
        # -00:21:16 until the first instant of 1901, then UTC.
        ("Africa/Ceuta", utc(1901, 1, 1, 1), utc(1901, 1, 1, 4), utc(1901, 1, 1)),
    ],
)
def test_a_range_just_after_local_mean_time_is_answered(
    zone: str, start: datetime, end: datetime, previous: datetime
) -> None:
    """The hour start before the first point lies after the zone left local mean time: the
    offset before it, which no bucket can answer, is none of this range's business."""
    grid = hour_grid(start, end, ZoneInfo(zone))
    assert grid.previous == previous
    assert grid.points == [start + HOUR * index for index in range(int((end - start) / HOUR) + 1)]


@pytest.mark.parametrize(
    ("zone", "start", "end", "points"),
    [
        # 0:00 until 1919-11-24T00:00Z, then +0:20: the next hour starts at 00:40Z.
        (
            "Africa/Accra",
            utc(1919, 11, 23, 21),
            utc(1919, 11, 24, 0, 30),
            [utc(1919, 11, 23, hour) for hour in (21, 22, 23)],
        ),
        ("Africa/Accra", utc(1919, 11, 24, 0, 15), utc(1919, 11, 24, 0, 30), []),
        # Between buckets, but before the 00:40Z hour start at +0:20.
        ("Africa/Accra", utc(1919, 11, 24, 0, 37, 13), utc(1919, 11, 24, 0, 37, 13), []),
        # +7:00 until 1932-12-31T17:00Z, then +7:20.
        (
            "Asia/Singapore",
            utc(1932, 12, 31, 15),
            utc(1932, 12, 31, 17, 30),
            [utc(1932, 12, 31, 15), utc(1932, 12, 31, 16)],
        ),
    ],
)
def test_a_range_ending_before_local_mean_time_starts_an_hour_is_answered(
    zone: str, start: datetime, end: datetime, points: list[datetime]
) -> None:
    """Only an hour start between buckets has no exact answer; an offset that starts none
    within the range is no reason to refuse it."""
    grid = hour_grid(start, end, ZoneInfo(zone))
    assert grid.points == points
    assert grid.offsets == [timedelta(0) if zone == "Africa/Accra" else HOUR * 7] * len(points)


def test_an_hour_start_between_buckets_inside_the_range_is_refused() -> None:
    """Lagos kept +0:13:35 in mid-1908: an hour started at 1908-07-01T00:46:25Z (01:00
    local), between buckets, within the range's seconds though after its last bucket
    boundary (00:45)."""
    with pytest.raises(InvalidInput) as refused:
        hour_grid(
            utc(1908, 6, 30, 23, 52, 13), utc(1908, 7, 1, 0, 52, 13), ZoneInfo("Africa/Lagos")
        )
    assert violation(refused)[0] == "time_zone"


def test_a_refusal_names_the_offset_with_its_sign_and_the_day() -> None:
    with pytest.raises(InvalidInput) as refused:
        hour_grid(utc(1971, 6, 1), utc(1971, 6, 1, 5), ZoneInfo("Africa/Monrovia"))
    assert violation(refused) == (
        "time_zone",
        "Africa/Monrovia had a UTC offset of -0:44:30 around 1971-06-01, "
        "which hourly history cannot answer exactly",
    )


# --- against the brute-force model --------------------------------------------------------

ALL_ZONES = sorted(zoneinfo.available_timezones())
# Zones with :30/:45 offsets, 30-minute DST, negative DST, skipped days, or DST at midnight.
NOTABLE_ZONES = [
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Australia/Eucla",
    "Pacific/Chatham",
    "America/St_Johns",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "America/Havana",
    "America/Caracas",
    "Asia/Pyongyang",
    "UTC",
]
zones = st.one_of(st.sampled_from(NOTABLE_ZONES), st.sampled_from(ALL_ZONES)).map(ZoneInfo)
# Every tzdata offset since 1980 is whole minutes; see tests/history_oracle.py.
EARLIEST, LATEST = datetime(1980, 1, 1), datetime(2037, 12, 1)


def next_offset_change(zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first instant within a year after `after` where the zone's offset changes, to
    the minute (day steps, then bisection)."""
    day = timedelta(days=1)
    offset = after.astimezone(zone).utcoffset()
    low = after
    while low - after < timedelta(days=366):
        high = low + day
        if high.astimezone(zone).utcoffset() != offset:
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            return high.replace(second=0, microsecond=0)
        low = high
    return None


@st.composite
def ranges(draw: st.DrawFn) -> tuple[ZoneInfo, datetime, datetime]:
    zone = draw(zones)
    start = draw(st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.just(UTC)))
    if draw(st.booleans()):
        # Around the zone's next offset change, where the interesting cases are.
        change = next_offset_change(zone, start)
        if change is not None:
            start = change - timedelta(minutes=draw(st.integers(0, 2 * 24 * 60)))
    start = draw(
        st.sampled_from(
            [
                start,
                start.replace(microsecond=0),
                start.replace(second=0, microsecond=0),
                start.replace(minute=start.minute - start.minute % 15, second=0, microsecond=0),
            ]
        )
    )
    length = draw(
        st.one_of(
            st.just(timedelta(0)),
            st.integers(0, 4 * 24 * 4).map(lambda quarters: quarters * timedelta(minutes=15)),
            st.integers(0, 4 * 24 * 3600 * 10**6).map(lambda us: timedelta(microseconds=us)),
        )
    )
    return zone, start, start + length


@given(ranges())
@example((NEW_YORK, utc(2024, 11, 3, 3, 0, 0, 1), utc(2024, 11, 3, 8)))
@example((ZoneInfo("Pacific/Apia"), utc(2011, 12, 29, 9), utc(2011, 12, 31, 12)))
@example((LORD_HOWE, utc(2024, 4, 6, 14, 59), utc(2024, 4, 6, 16, 31)))
@example((ZoneInfo("Pacific/Chatham"), utc(2024, 4, 6, 12), utc(2024, 4, 7, 12)))
# Across a UTC new year in summer time: the zone's offsets are looked up per year.
@example((ZoneInfo("Pacific/Auckland"), utc(2023, 12, 31, 10, 7), utc(2024, 1, 1, 14)))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hour_grid_matches_a_minute_by_minute_model(
    case: tuple[ZoneInfo, datetime, datetime],
) -> None:
    zone, start, end = case
    grid = hour_grid(start, end, zone)
    assert grid.points == hour_starts(start, end, zone)
    if grid.points:
        assert grid.previous == hour_start_before(grid.points[0], zone)
    assert grid.offsets == [p.astimezone(zone).utcoffset() for p in grid.points]
