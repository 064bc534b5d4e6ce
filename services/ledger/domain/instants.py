"""Reading instants that clients write: RFC 3339 with an explicit offset, nothing else."""

import re
from datetime import datetime

from services.ledger.domain.errors import InvalidInput

# RFC 3339 date-time: the offset is required ("Z" or ±hh:mm); a bare local time is refused.
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d+))?(?P<offset>[Zz]|[+-]\d{2}:\d{2})"
)


def parse_rfc3339(text: str, field: str) -> datetime:
    """An aware datetime; fractions beyond microseconds are truncated."""
    match = _RFC3339.fullmatch(text.strip()) if text else None
    if match is None:
        raise InvalidInput.single(
            field, "must be an RFC 3339 date-time with an offset, e.g. 2019-10-05T14:48:01+01:00"
        )
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        return datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{offset}")
    except ValueError as error:
        raise InvalidInput.single(field, "is not a valid date-time") from error
