"""Reading instants that clients write: RFC 3339 with an explicit offset, nothing else."""

import re
from datetime import UTC, datetime

from services.ledger.domain.errors import InvalidInput

# RFC 3339 date-time: the offset is required ("Z" or ±hh:mm); a bare local time is refused.
# ASCII digits only; offset minutes up to 59 (fromisoformat reads +05:99 as +06:39).
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d+))?(?P<offset>[Zz]|[+-]\d{2}:[0-5]\d)",
    re.ASCII,
)


def parse_rfc3339(text: str, field: str) -> datetime:
    """An aware datetime that also exists in UTC; fractions beyond microseconds are truncated."""
    match = _RFC3339.fullmatch(text.strip()) if text else None
    if match is None:
        raise InvalidInput.single(
            field, "must be an RFC 3339 date-time with an offset, e.g. 2019-10-05T14:48:01+01:00"
        )
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        instant = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{offset}")
    except ValueError as error:
        raise InvalidInput.single(field, "is not a valid date-time") from error
    # 0001-01-01T00:00:00+01:00 is a datetime, but not one in UTC, where it is stored.
    try:
        instant.astimezone(UTC)
    except OverflowError as error:
        raise InvalidInput.single(
            field, "must be within 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"
        ) from error
    return instant
