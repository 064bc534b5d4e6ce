"""15-minute UTC buckets and the instant text format stored in DynamoDB."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.ledger.domain.buckets import BUCKET, bucket_start, format_instant, parse_instant

KATHMANDU = timezone(timedelta(hours=5, minutes=45))
NEWFOUNDLAND = timezone(-timedelta(hours=3, minutes=30))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "start"),
    [
        (utc(2019, 10, 5, 14, 0), utc(2019, 10, 5, 14, 0)),
        (utc(2019, 10, 5, 14, 0, 0, 1), utc(2019, 10, 5, 14, 0)),
        (utc(2019, 10, 5, 14, 14, 59, 999999), utc(2019, 10, 5, 14, 0)),
        (utc(2019, 10, 5, 14, 15), utc(2019, 10, 5, 14, 15)),
        (utc(2019, 10, 5, 14, 48, 1), utc(2019, 10, 5, 14, 45)),
        (utc(2019, 10, 5, 23, 59, 59, 999999), utc(2019, 10, 5, 23, 45)),
        (utc(2019, 10, 6, 0, 0), utc(2019, 10, 6, 0, 0)),
        # 20:00+05:45 is 14:15Z; 20:29:59+05:45 is 14:44:59Z.
        (datetime(2019, 10, 5, 20, 0, tzinfo=KATHMANDU), utc(2019, 10, 5, 14, 15)),
        (datetime(2019, 10, 5, 20, 29, 59, tzinfo=KATHMANDU), utc(2019, 10, 5, 14, 30)),
        # 11:14+00:00 local with -03:30 is 14:44Z.
        (datetime(2019, 10, 5, 11, 14, tzinfo=NEWFOUNDLAND), utc(2019, 10, 5, 14, 30)),
        # The example of the design: 14:48:01+01:00 is 13:48:01Z.
        (
            datetime(2019, 10, 5, 14, 48, 1, tzinfo=timezone(timedelta(hours=1))),
            utc(2019, 10, 5, 13, 45),
        ),
    ],
)
def test_bucket_start(instant: datetime, start: datetime) -> None:
    result = bucket_start(instant)
    assert result == start
    assert result.utcoffset() == timedelta(0)


def test_bucket_start_is_in_utc_even_for_offset_input() -> None:
    result = bucket_start(datetime(2019, 10, 5, 20, 0, tzinfo=KATHMANDU))
    assert (result.hour, result.minute) == (14, 15)


def test_format_instant_is_utc_with_microseconds() -> None:
    instant = datetime(2019, 10, 5, 14, 48, 1, 120, tzinfo=timezone(timedelta(hours=1)))
    assert format_instant(instant) == "2019-10-05T13:48:01.000120Z"
    assert parse_instant("2019-10-05T13:48:01.000120Z") == utc(2019, 10, 5, 13, 48, 1, 120)


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


@settings(deadline=None)
@given(aware_instants)
def test_bucket_holds_the_instant_and_is_a_multiple_of_15_minutes(instant: datetime) -> None:
    start = bucket_start(instant)
    assert start <= instant < start + BUCKET
    assert start.utcoffset() == timedelta(0)
    since_midnight = start - start.replace(hour=0, minute=0, second=0, microsecond=0)
    assert since_midnight % BUCKET == timedelta(0)
    assert bucket_start(start) == start


@settings(deadline=None)
@given(aware_instants)
@example(datetime(2019, 10, 5, 14, 48, 1, tzinfo=UTC))
@example(datetime(1, 1, 1, tzinfo=UTC))  # protobuf's earliest Timestamp (Go's zero time)
@example(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC))
def test_format_then_parse_round_trips(instant: datetime) -> None:
    assert parse_instant(format_instant(instant)) == instant


@settings(deadline=None)
@given(aware_instants, aware_instants)
@example(datetime(999, 12, 31, tzinfo=UTC), datetime(1000, 1, 1, tzinfo=UTC))
def test_text_order_is_time_order(first: datetime, second: datetime) -> None:
    """Item keys embed format_instant; its docstring promises text order is time order."""
    if first == second:  # the same instant, maybe in two offsets
        return
    early, late = sorted((first, second))
    assert format_instant(early) < format_instant(late)
