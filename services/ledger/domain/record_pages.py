"""Listing a wallet's records a page at a time: the page size, and the opaque page token
that says where the next page starts (keyset pagination: the last record's occurred_at and
request id, never an offset, so a page costs the same however deep it is and records that
arrive between pages neither repeat nor push others out).

A token is bound to the request it continues: used with another wallet, start or end it is
refused, as Google's API Improvement Proposal 158 asks. Its content is not secret (it holds
the caller's own data) and not signed: a forged token can only point into the wallet the
caller may already read.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from services.ledger.domain.buckets import format_instant, parse_instant
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.ids import parse_request_id

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_TOKEN_VERSION = 1


@dataclass(frozen=True)
class RecordsFilter:
    """Which records a listing holds: the wallet's with start <= occurred_at < end."""

    wallet_id: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise InvalidInput.single("end", "must not be before start")

    @property
    def fingerprint(self) -> str:
        text = "\n".join((self.wallet_id, format_instant(self.start), format_instant(self.end)))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PagePosition:
    """The last record of a page: the next page holds the records after it in
    (occurred_at, request_id) order."""

    occurred_at: datetime
    request_id: str


def page_size(requested: int, field: str = "page_size") -> int:
    """0 means the default; more than the maximum is served as the maximum (AIP-158)."""
    if requested < 0:
        raise InvalidInput.single(field, "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(records: RecordsFilter, after: PagePosition) -> str:
    content = {
        "v": _TOKEN_VERSION,
        "f": records.fingerprint,
        "t": format_instant(after.occurred_at),
        "r": after.request_id,
    }
    text = json.dumps(content, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page_token(
    records: RecordsFilter, token: str, field: str = "page_token"
) -> PagePosition | None:
    """Where the page after `token` starts; None for an empty token (the first page)."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        content = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        version, fingerprint = content["v"], content["f"]
        # Only what a record can hold: a forged token must not carry a NUL or a lone
        # surrogate to the database.
        position = PagePosition(parse_instant(content["t"]), parse_request_id(content["r"]))
    except (
        ValueError,
        TypeError,
        KeyError,
        binascii.Error,
        UnicodeError,
        RecursionError,  # json.loads of "[[[[..."
    ) as error:
        raise InvalidInput.single(field, "is not a page token of this listing") from error
    if version != _TOKEN_VERSION or fingerprint != records.fingerprint:
        raise InvalidInput.single(
            field, "was issued for another wallet_id, start or end; send those unchanged"
        )
    return position
