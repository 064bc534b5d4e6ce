"""Page sizes and page tokens of a records listing: a token leads to its position, only for
the listing it came from, and anything else is refused as INVALID input, never passed on."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.record_pages import (
    MAX_PAGE_SIZE,
    PagePosition,
    RecordsFilter,
    decode_page_token,
    encode_page_token,
    page_size,
)

START = datetime(2024, 6, 1, tzinfo=UTC)
LISTING = RecordsFilter("alice", START, START + timedelta(days=1))
POSITION = PagePosition(START + timedelta(microseconds=7), 'key, with "quotes"')


def forged(**content: object) -> str:
    fields = {"v": 1, "f": LISTING.fingerprint, "t": "2024-06-01T00:00:00.000007Z", "r": "k"}
    text = json.dumps({**fields, **content})
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_a_token_leads_back_to_its_position() -> None:
    assert decode_page_token(LISTING, encode_page_token(LISTING, POSITION)) == POSITION
    assert decode_page_token(LISTING, "") is None


@pytest.mark.parametrize(
    "other",
    [
        RecordsFilter("bob", LISTING.start, LISTING.end),
        RecordsFilter("alice", LISTING.start + timedelta(microseconds=1), LISTING.end),
        RecordsFilter("alice", LISTING.start, LISTING.end + timedelta(microseconds=1)),
    ],
)
def test_a_token_is_refused_by_another_listing(other: RecordsFilter) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_page_token(other, encode_page_token(LISTING, POSITION))
    assert refused.value.violations[0].field == "page_token"


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        base64.urlsafe_b64encode(b"[]").decode(),
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
        forged(r="\u0000"),
        forged(r="\ud800"),
        forged(r=7),
        forged(r=""),
        forged(r="x" * 256),
        forged(t="yesterday"),
        forged(v=2),
    ],
)
def test_anything_but_a_token_of_the_listing_is_refused_as_invalid(token: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_page_token(LISTING, token)
    assert refused.value.violations[0].field == "page_token"


def test_page_sizes_default_cap_and_refuse_negatives() -> None:
    assert (page_size(0), page_size(7), page_size(10**9)) == (100, 7, MAX_PAGE_SIZE)
    with pytest.raises(InvalidInput):
        page_size(-1)


def test_a_listing_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        RecordsFilter("alice", START, START - timedelta(microseconds=1))
    assert refused.value.violations[0].field == "end"
