"""15-minute UTC buckets: every real UTC offset is a multiple of 15 minutes, so sums of
buckets give exact hour boundaries in every time zone."""

from datetime import UTC, datetime, timedelta

BUCKET = timedelta(minutes=15)


def bucket_start(instant: datetime) -> datetime:
    """The start (UTC, inclusive) of the 15-minute bucket holding `instant`."""
    utc = instant.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def ceil_to_bucket(instant: datetime) -> datetime:
    """The first bucket boundary (UTC) at or after `instant`."""
    start = bucket_start(instant)
    # Compared in UTC: == across zones is always False for an instant in a DST fold.
    return start if start == instant.astimezone(UTC) else start + BUCKET


def format_instant(instant: datetime) -> str:
    """RFC 3339 in UTC with microseconds; sorts as text in time order."""
    utc = instant.astimezone(UTC)
    # %Y does not pad years before 1000 on Linux; the text must sort in time order.
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> datetime:
    """Reads what `format_instant` wrote."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
