"""Instants: reading those clients write (RFC 3339 with an explicit offset, nothing else),
and microseconds since the epoch, as the read model gives records' instants."""

import re
from datetime import UTC, datetime, timedelta

from services.ledger.domain.errors import InvalidInput

# RFC 3339 date-time: the offset is required ("Z" or ±hh:mm); a bare local time is refused.
# ASCII digits only; offset minutes up to 59 (fromisoformat reads +05:99 as +06:39).
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d+))?(?P<offset>[Zz]|[+-]\d{2}:[0-5]\d)",
    re.ASCII,
)
_MICROSECOND_DIGITS = 6
_MICROSECOND = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OUT_OF_RANGE = "must be within 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"


def parse_rfc3339(text: str, field: str, *, round_up: bool = False) -> datetime:
    """An aware datetime that also exists in UTC, in the offset as written, at Python's
    microsecond precision: digits beyond microseconds are truncated, as the gRPC services
    truncate a Timestamp's nanoseconds. With `round_up` they round up to the next microsecond
    instead, as the query service reads a range's start, which must not move before the
    instant the client sent (00:00:00.0000001 must not let the 00:00 point in); in UTC when
    the written offset cannot spell the result (9999-12-31T23:59:59.9999999+01:00)."""
    match = _RFC3339.fullmatch(text.strip()) if text else None
    if match is None:
        raise InvalidInput.single(
            field, "must be an RFC 3339 date-time with an offset, e.g. 2019-10-05T14:48:01+01:00"
        )
    digits = match["fraction"] or ""
    fraction = digits[:_MICROSECOND_DIGITS].ljust(_MICROSECOND_DIGITS, "0")
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        instant = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{offset}")
    except ValueError as error:
        raise InvalidInput.single(field, "is not a valid date-time") from error
    # 0001-01-01T00:00:00+01:00 is a datetime, but not one in UTC, where it is stored.
    try:
        instant.astimezone(UTC)
    except OverflowError as error:
        raise InvalidInput.single(field, _OUT_OF_RANGE) from error
    if round_up and digits[_MICROSECOND_DIGITS:].strip("0"):
        return _next_microsecond(instant, field)
    return instant


def _next_microsecond(instant: datetime, field: str) -> datetime:
    """`instant` plus a microsecond, in its own offset when that can spell it, else in UTC."""
    try:
        return instant + _MICROSECOND
    except OverflowError:
        pass
    try:
        return instant.astimezone(UTC) + _MICROSECOND
    except OverflowError as error:
        raise InvalidInput.single(field, _OUT_OF_RANGE) from error


def datetime_from_microseconds(microseconds: int) -> datetime:
    return EPOCH + microseconds * _MICROSECOND


def microseconds_since_epoch(instant: datetime) -> int:
    return (instant - EPOCH) // _MICROSECOND
