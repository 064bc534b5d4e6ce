"""Properties of every parser of client text (issue 6): amounts, date-times, ids and keys.

Each property states what a caller relies on; the oracles are written independently of the
parsers (integer arithmetic for amounts, datetime's constructor for date-times) so that a
parser regression, and not only a crash, fails a test. The example-based cases live in
test_money.py, test_buckets.py, test_ids.py, test_history.py and test_gateway_keys.py.
"""

import json
import re
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from gateway.bodies import amount_text
from gateway.idempotency import request_key
from gateway.problems import Problem
from services.ledger.adapters.ledger_table import aggregate_key, record_key
from services.ledger.domain.buckets import (
    BUCKET,
    bucket_start,
    ceil_to_bucket,
    format_instant,
    parse_instant,
)
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.history import parse_time_zone
from services.ledger.domain.ids import parse_request_id, parse_wallet_id
from services.ledger.domain.instants import parse_rfc3339
from services.ledger.domain.money import format_amount, parse_amount

DIGITS = string.digits
WALLET_ALPHABET = string.ascii_letters + string.digits + "_-"
PRINTABLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F))
# Arabic-Indic, Devanagari, fullwidth and NKo digits: str.isdigit() and re's \d say yes.
FOREIGN_DIGITS = "\u0663\u0967\uff11\u07c1"

# Any text a client can send, control characters included (surrogates cannot be encoded).
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=120)
# What a header value can carry: bytes, which Starlette decodes as Latin-1.
header_text = st.text(st.characters(max_codepoint=0xFF), max_size=300)


T = TypeVar("T")


def attempt(parse: Callable[[], T]) -> tuple[T | None, list[str]]:
    """The parser's result, or None and the fields its InvalidInput names; any other
    exception propagates and fails the test."""
    try:
        return parse(), []
    except InvalidInput as error:
        return None, [violation.field for violation in error.violations]


def refused_fields(parse: Any, *args: Any) -> list[str]:
    """The fields an InvalidInput names; any other exception propagates and fails the test."""
    with pytest.raises(InvalidInput) as raised:
        parse(*args)
    return [violation.field for violation in raised.value.violations]


# --- amounts -------------------------------------------------------------------------------

_AMOUNT_TEXT = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")


def expected_amount(text: str) -> str | None:
    """The canonical text of the amount `text` spells, or None when the rules refuse it.

    Integer arithmetic on the digits only, so exponents of any size are cheap: > 0, at most
    20 digits before the point and 18 after once leading and trailing zeros are dropped,
    and at most 100 characters of text."""
    match = _AMOUNT_TEXT.fullmatch(text)
    assert match is not None, text
    sign, integer, fraction, exponent = match[1], match[2], match[3] or "", match[4] or "0"
    digits = integer + fraction
    significant = digits.lstrip("0")
    # Digits of `significant` before the decimal point (negative: zeros after the point).
    point = len(integer) + int(exponent) - (len(digits) - len(significant))
    significant = significant.rstrip("0")
    if len(text) > 100 or not significant or sign == "-":
        return None
    if point > 20 or len(significant) - point > 18:
        return None
    if point >= len(significant):
        return significant + "0" * (point - len(significant))
    if point <= 0:
        return "0." + "0" * -point + significant
    return f"{significant[:point]}.{significant[point:]}"


@st.composite
def amount_texts(draw: st.DrawFn) -> str:
    """Plain decimal syntax: signs, leading and trailing zeros, bare points, and exponents
    from 0 to far beyond what Decimal can hold."""
    integer = draw(st.text(DIGITS, max_size=24))
    fraction = draw(st.none() | st.text(DIGITS, max_size=24))
    if not integer and not fraction:
        integer = draw(st.text(DIGITS, min_size=1, max_size=3))
    text = draw(st.sampled_from(["", "+", "-"])) + integer
    if fraction is not None:
        text += "." + fraction
    exponent = draw(st.none() | st.integers(-45, 45) | st.integers(-(10**40), 10**40))
    if exponent is not None:
        text += draw(st.sampled_from("eE"))
        text += "-" if exponent < 0 else draw(st.sampled_from(["", "+"]))
        text += "0" * draw(st.integers(0, 2)) + str(abs(exponent))
    return text


@settings(max_examples=200, deadline=None)
@given(amount_texts())
@example("1e-99999999999999999999999")  # beyond Decimal's exponent range: not InvalidOperation
@example("1e99999999999999999999999")
@example("0e99999999999999999999999")
@example("0.000000000000000001e20")  # 1e2, written with 18 fraction digits
@example("123456789012345678901e-1")  # 21 digits of text, 20 before the point
def test_amount_text_means_exactly_what_its_digits_say(text: str) -> None:
    expected = expected_amount(text)
    if expected is None:
        assert refused_fields(parse_amount, text, "deposit.amount") == ["deposit.amount"]
        return
    value = parse_amount(text)
    assert format_amount(value) == expected
    # The canonical text is itself an amount, the same one, and formats to itself.
    assert parse_amount(expected) == value
    assert format_amount(parse_amount(format_amount(value))) == expected


@settings(max_examples=150, deadline=None)
@given(
    any_text
    # re's \d is Unicode: these are decimal-looking texts with foreign digits in them.
    | st.from_regex(r"[+-]?\d{0,6}(\.\d{0,6})?([eE][+-]?\d{1,3})?", fullmatch=True)
    | st.text(DIGITS + FOREIGN_DIGITS + ".eE+-_ \t\n\x00", max_size=30)
)
@example("\u0663")  # Arabic-Indic three: Decimal() reads it as 3
@example("\uff11.5")  # fullwidth one
@example("1.5\u0663")
def test_any_text_is_a_plain_ascii_amount_or_invalid_input(text: str) -> None:
    value, refused = attempt(lambda: parse_amount(text))
    if value is None:
        assert refused == ["amount"]
        return
    assert text.isascii(), "only ASCII digits are amount digits"
    assert format_amount(value) == expected_amount(text)


# JSON's number grammar; exponents stay within Decimal's range (see the report of issue 6:
# a larger one makes json.loads(parse_float=Decimal) raise InvalidOperation).
json_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,17})?", fullmatch=True
)


@settings(max_examples=150, deadline=None)
@given(json_numbers)
@example("1E400")
@example("-0")
@example("0.1e-17")
def test_a_json_number_is_the_same_amount_as_the_same_digits_in_a_string(number: str) -> None:
    """The gateway reads JSON numbers as Decimal or int, then sends their text on."""
    as_number = amount_text(json.loads(f'{{"amount": {number}}}', parse_float=Decimal))
    as_string = amount_text(json.loads(json.dumps({"amount": number})))
    assert as_string == number
    assert attempt(lambda: parse_amount(as_number)) == attempt(lambda: parse_amount(as_string))


# --- date-times ----------------------------------------------------------------------------

# Whole-minute offsets as RFC 3339 writes them, and the zones of the tz database (whose
# local mean times have offsets in seconds, which RFC 3339 cannot write).
minute_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
zones = minute_offsets | st.timezones()
# A day inside datetime's range at each end, so that every instant exists in UTC too.
aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones
)
_RFC3339_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def expected_instant(text: str) -> datetime | None:
    """What `text` (RFC 3339 shaped, ASCII) denotes, by datetime's constructor: None when a
    field is out of range, or the instant is not within datetime's range in UTC."""
    match = _RFC3339_TEXT.fullmatch(text)
    assert match is not None, text
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    microsecond = int((match[7] or "")[:6].ljust(6, "0"))  # truncated, never rounded
    sign, offset_hours, offset_minutes = match[8], int(match[9] or 0), int(match[10] or 0)
    if offset_hours > 23 or offset_minutes > 59:
        return None
    offset = timedelta(hours=offset_hours, minutes=offset_minutes) * (-1 if sign == "-" else 1)
    try:
        instant = datetime(
            year, month, day, hour, minute, second, microsecond, tzinfo=timezone(offset)
        )
        instant.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return instant


@st.composite
def rfc3339_texts(draw: st.DrawFn) -> str:
    """RFC 3339 shaped text with each field a little beyond its range, years 0 to 9999."""
    year = draw(st.integers(0, 9999) | st.sampled_from([0, 1, 9999]))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = (
        draw(st.integers(0, 25)),
        draw(st.integers(0, 61)),
        draw(st.integers(0, 61)),
    )
    text = f"{year:04d}-{month:02d}-{day:02d}{draw(st.sampled_from('Tt '))}"
    text += f"{hour:02d}:{minute:02d}:{second:02d}"
    fraction = draw(st.none() | st.text(DIGITS, min_size=1, max_size=12))
    if fraction is not None:
        text += "." + fraction
    offset_hours, offset_minutes = draw(st.integers(0, 25)), draw(st.integers(0, 99))
    offsets = ["Z", "z", f"{draw(st.sampled_from('+-'))}{offset_hours:02d}:{offset_minutes:02d}"]
    return text + draw(st.sampled_from(offsets))


@settings(max_examples=200, deadline=None)
@given(rfc3339_texts())
@example("2019-10-05T14:48:01+05:99")  # an offset minute of 99
@example("0001-01-01T00:00:00+01:00")  # 0000-12-31T23:00Z: no such UTC datetime
@example("9999-12-31T23:59:59-00:01")  # 10000-01-01T00:00:59Z
@example("9999-12-31T23:59:59.9999999+00:00")  # truncated, so still in range
def test_rfc3339_text_means_exactly_the_instant_its_fields_say(text: str) -> None:
    expected = expected_instant(text)
    if expected is None:
        assert refused_fields(parse_rfc3339, text, "start") == ["start"]
        return
    parsed = parse_rfc3339(text, "start")
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset(), "the offset is kept as written"
    # What the services do next with it must not overflow.
    assert parse_instant(format_instant(parsed)) == parsed
    assert bucket_start(parsed) <= parsed


@settings(max_examples=200, deadline=None)
@given(
    any_text
    | st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", fullmatch=True)
    | rfc3339_texts().map(lambda text: text.replace("1", "\u0661"))
)
@example("2019-10-05T14:48:01.123456\u0663Z")  # a seventh, Arabic-Indic, fraction digit
def test_any_text_is_an_ascii_date_time_with_an_offset_or_invalid_input(text: str) -> None:
    parsed, refused = attempt(lambda: parse_rfc3339(text, "datetime"))
    if parsed is None:
        assert refused == ["datetime"]
        return
    assert text.strip().isascii(), "only ASCII digits are date-time digits"
    assert parsed == expected_instant(text.strip())


def whole_minutes(offset: timedelta | None) -> bool:
    assert offset is not None
    return offset % timedelta(minutes=1) == timedelta(0)


@settings(max_examples=200, deadline=None)
@given(aware_datetimes, st.sampled_from("T "))
@example(datetime(1900, 1, 1, tzinfo=ZoneInfo("Africa/Monrovia")), "T")  # -00:43:08
@example(datetime(2023, 11, 5, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")), "T")
def test_isoformat_reads_back_as_the_same_instant_and_offset(instant: datetime, sep: str) -> None:
    text = instant.isoformat(sep=sep)
    if not whole_minutes(instant.utcoffset()):
        # Local mean time offsets such as -00:43:08 have no RFC 3339 spelling.
        assert refused_fields(parse_rfc3339, text, "at") == ["at"]
        return
    parsed = parse_rfc3339(text, "at")
    assert parsed.astimezone(UTC) == instant.astimezone(UTC)
    assert parsed.utcoffset() == instant.utcoffset()
    assert parsed.isoformat(sep=sep) == text


@settings(max_examples=150, deadline=None)
@given(aware_datetimes.filter(lambda t: whole_minutes(t.utcoffset())), st.text(DIGITS, max_size=9))
def test_fraction_digits_beyond_microseconds_are_truncated_never_rounded(
    instant: datetime, nanos: str
) -> None:
    text = instant.isoformat(timespec="microseconds")
    # "YYYY-MM-DDTHH:MM:SS.ffffff" is 26 characters; the offset follows.
    parsed = parse_rfc3339(text[:26] + nanos + text[26:], "at")
    assert parsed.astimezone(UTC) == instant.astimezone(UTC)
    millis = parse_rfc3339(instant.isoformat(timespec="milliseconds"), "at")
    assert millis.astimezone(UTC) == instant.astimezone(UTC).replace(
        microsecond=instant.microsecond // 1000 * 1000
    )


LAST_MICROSECOND = datetime.max.replace(tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(rfc3339_texts())
@example("2019-10-05T00:00:00.0000001Z")  # finding 6: not 00:00 itself
@example("2019-10-05T00:00:00.0000000Z")  # zeros only: already a microsecond
@example("2019-10-05T00:00:00.1234560001+05:45")
@example("2019-10-05T00:00:00.9999999-01:00")  # rounds into the next second
@example("9999-12-31T23:59:59.9999999+00:00")  # no next microsecond in UTC
@example("9999-12-31T23:59:59.9999999+01:00")  # only UTC can spell the next one
def test_a_range_start_rounds_digits_beyond_microseconds_up(text: str) -> None:
    """The least microsecond instant not before the one written: a start at
    00:00:00.0000001 must not let the 00:00 point in, as the query service rounds a
    Timestamp's start up."""
    truncated = expected_instant(text)
    fraction = _RFC3339_TEXT.fullmatch(text)[7] or ""  # type: ignore[index]
    exact_is_a_microsecond = not fraction[6:].strip("0")
    parsed, refused = attempt(lambda: parse_rfc3339(text, "start", round_up=True))
    if truncated is None or (
        not exact_is_a_microsecond and truncated.astimezone(UTC) == LAST_MICROSECOND
    ):
        assert refused == ["start"]
        return
    assert parsed is not None, refused
    step = timedelta(0) if exact_is_a_microsecond else timedelta(microseconds=1)
    assert parsed.astimezone(UTC) == truncated.astimezone(UTC) + step
    if parsed.utcoffset() != truncated.utcoffset():  # only past 9999-12-31 in its own offset
        assert parsed.utcoffset() == timedelta(0)
        assert truncated.replace(tzinfo=None) == datetime.max
    assert parse_instant(format_instant(parsed)) == parsed


# --- buckets -------------------------------------------------------------------------------


# Local quarter hours: boundaries whenever the zone's offset is a multiple of 15 minutes.
local_quarter_hours = aware_datetimes.map(
    lambda t: t.replace(minute=t.minute // 15 * 15, second=0, microsecond=0)
)


def is_boundary(instant: datetime) -> bool:
    utc = instant.astimezone(UTC)
    return utc.minute % 15 == 0 and utc.second == 0 and utc.microsecond == 0


@settings(max_examples=200, deadline=None)
@given(aware_datetimes | local_quarter_hours)
@example(datetime(2023, 11, 5, 1, 0, fold=0, tzinfo=ZoneInfo("America/New_York")))
@example(datetime(2023, 11, 5, 1, 0, fold=1, tzinfo=ZoneInfo("America/New_York")))
def test_ceil_to_bucket_is_the_first_boundary_at_or_after_the_instant(instant: datetime) -> None:
    utc = instant.astimezone(UTC)  # compare as instants: fold-dependent == is always False
    ceiling = ceil_to_bucket(instant)
    assert ceiling.utcoffset() == timedelta(0)
    assert is_boundary(ceiling)
    assert utc <= ceiling < utc + BUCKET
    assert (ceiling == utc) == is_boundary(instant)
    assert ceil_to_bucket(ceiling) == ceiling
    assert ceiling == bucket_start(instant) + (timedelta(0) if is_boundary(instant) else BUCKET)


@settings(max_examples=150, deadline=None)
@given(aware_datetimes, aware_datetimes.map(bucket_start))
def test_bucket_start_and_ceiling_are_the_nearest_boundaries(
    instant: datetime, boundary: datetime
) -> None:
    """For every boundary b: b <= t exactly when b <= bucket_start(t), and t <= b exactly
    when ceil_to_bucket(t) <= b, whatever zone t is written in."""
    utc = instant.astimezone(UTC)
    assert (boundary <= utc) == (boundary <= bucket_start(instant))
    assert (utc <= boundary) == (ceil_to_bucket(instant) <= boundary)


@settings(max_examples=200, deadline=None)
@given(aware_datetimes)
def test_format_instant_is_fixed_width_utc_and_reads_back_in_any_zone(instant: datetime) -> None:
    text = format_instant(instant)
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z", text)
    assert parse_instant(text) == instant.astimezone(UTC)
    assert format_instant(parse_instant(text)) == text


@settings(max_examples=150, deadline=None)
@given(
    st.timezone_keys()
    | st.from_regex(r"[A-Za-z0-9_+./-]{1,20}(/[A-Za-z0-9_+./\x00-]{0,20}){0,3}", fullmatch=True)
    | st.timezone_keys().map(str.lower)
)
@example("Europe/../Europe/London")
@example("./UTC")
def test_a_time_zone_is_known_by_exactly_its_name(name: str) -> None:
    zone, refused = attempt(lambda: parse_time_zone(name))
    if zone is None:
        assert refused == ["time_zone"]
        return
    assert zone.key == name
    assert not {".", ".."} & set(name.split("/")), "no path tricks"


# --- ids -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    any_text | st.text(WALLET_ALPHABET, max_size=70) | st.text(WALLET_ALPHABET + "é\n", max_size=70)
)
def test_a_wallet_id_is_exactly_1_to_64_letters_digits_underscores_or_dashes(text: str) -> None:
    valid = 1 <= len(text) <= 64 and set(text) <= set(WALLET_ALPHABET)
    if valid:
        assert parse_wallet_id(text) == text
    else:
        assert refused_fields(parse_wallet_id, text) == ["wallet_id"]


def is_request_id(text: str) -> bool:
    """The model of a valid request id: 1 to 255 printable ASCII characters with no space at
    either end, which HTTP would drop from a header."""
    return 1 <= len(text) <= 255 and set(text) <= set(PRINTABLE_ASCII) and text == text.strip()


@settings(max_examples=200, deadline=None)
@given(any_text | header_text | st.text(PRINTABLE_ASCII, min_size=250, max_size=260))
def test_a_request_id_is_exactly_1_to_255_printable_ascii_characters(text: str) -> None:
    if is_request_id(text):
        assert parse_request_id(text) == text
    else:
        assert refused_fields(parse_request_id, text) == ["request_id"]


# --- DynamoDB keys -------------------------------------------------------------------------

wallet_ids = st.text(WALLET_ALPHABET, min_size=1, max_size=64)
request_ids = st.text(PRINTABLE_ASCII, min_size=1, max_size=255).filter(lambda s: s == s.strip())
shards = st.integers(0, 10_000)


def item_key(key: dict[str, Any]) -> tuple[str, str]:
    return key["pk"]["S"], key["sk"]["S"]


@settings(max_examples=200, deadline=None)
@given(wallet_ids, aware_datetimes.map(bucket_start), shards, zones)
def test_an_aggregate_key_reads_back_as_its_wallet_bucket_and_shard(
    wallet: str, bucket: datetime, shard: int, zone: Any
) -> None:
    partition, sort = item_key(aggregate_key(wallet, bucket, shard))
    kind, key_wallet, key_bucket, key_shard = partition.split("#")
    assert (kind, key_wallet, key_shard, sort) == ("AGGREGATE", wallet, str(shard), "aggregate")
    assert parse_instant(key_bucket) == bucket
    # The bucket is an instant: written in another zone it is the same item.
    assert aggregate_key(wallet, bucket.astimezone(zone), shard) == aggregate_key(
        wallet, bucket, shard
    )


# Small domains, so that equal and nearly equal keys are drawn often.
close_wallets = st.sampled_from(["a", "a-", "-a", "a_1", "a1", "A"])
close_buckets = st.integers(0, 8).map(lambda n: datetime(2024, 3, 31, 1, tzinfo=UTC) + n * BUCKET)
close_request_ids = st.text("aA1#-_ =", min_size=1, max_size=6) | st.builds(
    lambda w, s: f"AGGREGATE#{w}#2024-03-31T01:00:00.000000Z#{s}", close_wallets, shards
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(close_wallets, close_buckets, st.integers(0, 12)), max_size=30),
    st.lists(st.tuples(close_wallets, close_request_ids), max_size=30),
)
def test_distinct_items_never_share_a_key(
    aggregates: list[tuple[str, datetime, int]], requests: list[tuple[str, str]]
) -> None:
    """Request ids are scoped per wallet: (wallet, request id) pairs that differ in either
    never share a key, even where request ids hold "#" or look like other keys."""
    aggregate_keys = {item: item_key(aggregate_key(*item)) for item in aggregates}
    record_keys = {request: item_key(record_key(*request)) for request in requests}
    keys = [*aggregate_keys.values(), *record_keys.values()]
    assert len(set(keys)) == len(aggregate_keys) + len(record_keys)


# --- gateway idempotency keys --------------------------------------------------------------


def raw_headers(**values: str) -> Headers:
    return Headers(
        raw=[
            (name.replace("_", "-").lower().encode(), value.encode("latin-1"))
            for name, value in values.items()
        ]
    )


@settings(max_examples=200, deadline=None)
@given(header_text | request_ids, header_text)
@example(" ", "")  # printable, but HTTP would drop the space: refused, as over gRPC
@example("key ", "")
def test_an_idempotency_key_is_used_as_sent_or_refused_naming_the_header(
    key: str, trace: str
) -> None:
    headers = raw_headers(Idempotency_Key=key, X_Amzn_Trace_Id=trace)
    if is_request_id(key):
        assert request_key(headers) == key
        return
    with pytest.raises(Problem) as raised:
        request_key(headers)
    assert raised.value.status == 400
    assert list(raised.value.errors) == ["Idempotency-Key"]


trace_field_values = st.text(PRINTABLE_ASCII.replace(";", ""), max_size=40)
trace_ids = header_text | st.lists(
    st.builds(
        lambda name, value: f"{name}={value}",
        st.sampled_from(["Root", "Self", "Parent", "Sampled", "root", " Root"]),
        trace_field_values,
    ),
    max_size=4,
).map(";".join)


@settings(max_examples=200, deadline=None)
@given(trace_ids)
@example("Root=1-5759e988-bd862e3fe1be46a994272793")
@example("custom-trace-7")  # a valid request id on its own
def test_without_an_idempotency_key_a_trace_id_never_becomes_the_key(trace: str) -> None:
    """Every call of one distributed trace shares its trace id: each deposit without an
    Idempotency-Key gets a fresh random key, whatever X-Amzn-Trace-Id says."""
    headers = raw_headers(X_Amzn_Trace_Id=trace)
    key, again = request_key(headers), request_key(headers)
    assert key != again
    assert uuid.UUID(key).version == uuid.UUID(again).version == 4
    assert str(uuid.UUID(key)) == key, "the key is the UUID's canonical text, nothing else"
