"""parse_amount / format_amount: exact decimals within 20 integer and 18 fraction digits."""

import decimal
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.money import canonical_amount, format_amount, parse_amount

LARGEST = "9" * 20 + "." + "9" * 18
SMALLEST = "0." + "0" * 17 + "1"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1.1", "1.1"),
        ("0.1", "0.1"),
        ("1.10", "1.1"),
        ("2e3", "2000"),
        ("2E+3", "2000"),
        ("1E-18", SMALLEST),
        ("1e-18", SMALLEST),
        (".5", "0.5"),
        ("100", "100"),
        ("007", "7"),
        ("9" * 20, "9" * 20),
        ("1" + "0" * 19, "1" + "0" * 19),
        (SMALLEST, SMALLEST),
        ("1.5000000000000000000000", "1.5"),
        ("1" + "0" * 19 + ".000000000000000000000", "1" + "0" * 19),
        # 38 significant digits: the full NUMERIC(38,18) range must survive exactly.
        ("12345678901234567890.123456789012345678", "12345678901234567890.123456789012345678"),
        (LARGEST, LARGEST),
        ("1" + "0" * 19 + "." + "0" * 17 + "1", "1" + "0" * 19 + "." + "0" * 17 + "1"),
    ],
)
def test_accepts_and_canonicalises(text: str, canonical: str) -> None:
    value = parse_amount(text)
    assert format_amount(value) == canonical
    assert value == Decimal(text)
    assert value > 0


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("0", id="zero"),
        pytest.param("0.000", id="zero with fraction"),
        pytest.param("-0", id="negative zero"),
        pytest.param("-1", id="negative"),
        pytest.param("abc", id="letters"),
        pytest.param("1e400", id="huge exponent"),
        pytest.param("NaN", id="NaN"),
        pytest.param("nan", id="nan"),
        pytest.param("sNaN", id="sNaN"),
        pytest.param("Infinity", id="Infinity"),
        pytest.param("-Infinity", id="-Infinity"),
        pytest.param("inf", id="inf"),
        pytest.param("0.0000000000000000001", id="19 fraction digits"),
        pytest.param("1" + "0" * 20, id="21 integer digits"),
        pytest.param("1" + "0" * 20 + ".0", id="21 integer digits with fraction"),
        pytest.param("1_000", id="underscore"),
        pytest.param(" 1", id="leading space"),
        pytest.param("1 ", id="trailing space"),
        pytest.param("0x10", id="hex"),
        pytest.param("1e-19", id="exponent below 18 fraction digits"),
        pytest.param("1" * 101, id="overlong"),
        pytest.param("1,5", id="comma"),
        pytest.param("1.2.3", id="two points"),
        pytest.param("e5", id="exponent only"),
        # 39 significant digits: must be refused, not rounded to Decimal's 28-digit context.
        pytest.param("12345678901234567890.1234567890123456789", id="20+19 digits"),
        # Decimal's default context traps Overflow in normalize(); must still be InvalidInput.
        pytest.param("1e1000000", id="exponent beyond context Emax"),
        # Rounds to zero in Decimal's default context; a zero deposit must never pass.
        pytest.param("1e-999999999", id="exponent below context Etiny"),
    ],
)
def test_rejects_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_amount(text)
    assert [v.field for v in raised.value.violations] == ["amount"]
    assert raised.value.violations[0].description


def test_error_names_the_given_field() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_amount("0", field="deposit.amount")
    assert [v.field for v in raised.value.violations] == ["deposit.amount"]


def test_ten_tenths_sum_to_exactly_one() -> None:
    total = sum((parse_amount("0.1") for _ in range(10)), Decimal(0))
    assert total == Decimal("1.0")
    assert format_amount(total) == "1"
    # The float way would not: this guards against a float sneaking into the sum.
    assert sum(0.1 for _ in range(10)) != 1.0


def test_format_amount_never_uses_exponent_notation() -> None:
    assert format_amount(Decimal("1E+5")) == "100000"
    assert format_amount(Decimal("1E-7")) == "0.0000001"
    assert format_amount(Decimal("1.2300")) == "1.23"
    assert canonical_amount(Decimal("1.10")) == Decimal("1.1")


@st.composite
def amounts_in_range(draw: st.DrawFn) -> tuple[int, int]:
    """(unscaled, scale): the amount unscaled * 10**-scale, > 0 and inside 20.18 digits."""
    scale = draw(st.integers(min_value=0, max_value=18))
    unscaled = draw(st.integers(min_value=1, max_value=10 ** (20 + scale) - 1))
    return unscaled, scale


def canonical_text(unscaled: int, scale: int) -> str:
    """Independent oracle: plain notation, no trailing fraction zeros, no exponent."""
    digits = str(unscaled).rjust(scale + 1, "0")
    integer, fraction = digits[: len(digits) - scale], digits[len(digits) - scale :]
    fraction = fraction.rstrip("0")
    return integer.lstrip("0").rjust(1, "0") + (f".{fraction}" if fraction else "")


@settings(deadline=None)
@given(amounts_in_range(), st.integers(min_value=0, max_value=3))
@example((12345678901234567890123456789012345678, 18), 0)  # 38 significant digits
@example((10**38 - 1, 18), 0)  # the largest amount
def test_any_amount_in_range_round_trips_exactly(amount: tuple[int, int], extra_zeros: int) -> None:
    unscaled, scale = amount
    exact = Decimal(f"{unscaled}E-{scale}")  # string construction is exact
    expected = canonical_text(unscaled, scale)
    spellings = [str(exact), f"{exact:f}", f"{unscaled}e-{scale}"]
    if scale > 0:
        spellings.append(f"{exact:f}" + "0" * extra_zeros)
    for text in spellings:
        value = parse_amount(text)
        assert format_amount(value) == expected, text
        assert value == exact, text


@settings(deadline=None)
@given(
    st.from_regex(r"[+-]?\d{1,25}(\.\d{0,25})?([eE][+-]?\d{1,10})?", fullmatch=True)
    | st.text(max_size=40)
)
@example("1e1000000")
@example("1e-999999999")
def test_any_text_is_either_a_positive_exact_amount_or_invalid_input(text: str) -> None:
    try:
        value = parse_amount(text)
    except InvalidInput as error:
        refused_fields = [v.field for v in error.violations]
    else:
        refused_fields = []
    if refused_fields:
        assert refused_fields == ["amount"]
        return
    assert value > 0
    assert value == Decimal(text)
    with decimal.localcontext() as exact:
        exact.prec = 100
        assert value < Decimal(10) ** 20
        assert value * Decimal(10) ** 18 == (value * Decimal(10) ** 18).to_integral_value()
