"""How an aggregate item holds its running sum: whole units and atto-units, each ADDed,
carried when read (services.ledger.adapters.ledger_table). DynamoDB's ADD is integer
addition here, so a plain sum of the parts stands in for it."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.adapters import ledger_table as t
from services.ledger.domain.money import exact_arithmetic, format_amount, parse_amount

LARGEST = "99999999999999999999.999999999999999999"
SMALLEST = "0.000000000000000001"
# A DynamoDB number holds at most 38 significant digits.
DYNAMODB_DIGITS = 38


def item(whole: int, atto: int) -> dict[str, dict[str, str]]:
    """An aggregate item's sum attributes as DynamoDB answers them."""
    return {t.AMOUNT_WHOLE: {"N": str(whole)}, t.AMOUNT_ATTO: {"N": str(atto)}}


def added(amounts: list[Decimal]) -> dict[str, dict[str, str]]:
    """The item after one ADD of each amount's parts, as DynamoDB would hold it."""
    parts = [t.aggregate_amount_parts(amount) for amount in amounts]
    return item(sum(whole for whole, _ in parts), sum(atto for _, atto in parts))


@pytest.mark.parametrize(
    ("amount", "parts"),
    [
        ("1.1", (1, 100_000_000_000_000_000)),
        ("2000", (2000, 0)),
        (SMALLEST, (0, 1)),
        (LARGEST, (10**20 - 1, 10**18 - 1)),
        ("12345678901234567890.123456789012345678", (12345678901234567890, 123456789012345678)),
    ],
)
def test_an_amount_splits_into_whole_and_atto_units(amount: str, parts: tuple[int, int]) -> None:
    assert t.aggregate_amount_parts(parse_amount(amount)) == parts
    assert t.aggregate_amount(item(*parts)) == Decimal(amount)


def test_atto_units_beyond_one_unit_carry_into_the_whole() -> None:
    assert t.aggregate_amount(item(1, 10**18)) == Decimal(2)
    assert t.aggregate_amount(item(0, 25 * 10**18 + 5)) == Decimal("25.000000000000000005")


def test_the_sum_that_overflowed_one_number_attribute_is_exact() -> None:
    """Ten of the largest amounts and one of the smallest need 39 significant
    digits, more than one DynamoDB number holds; each part holds far fewer."""
    amounts = [parse_amount(LARGEST)] * 10 + [parse_amount(SMALLEST)]
    total = added(amounts)
    assert all(len(value["N"]) < DYNAMODB_DIGITS for value in total.values())
    assert t.aggregate_amount(total) == Decimal("999999999999999999999.999999999999999991")


def test_the_decoded_sum_is_canonical() -> None:
    assert str(t.aggregate_amount(item(1, 10**17))) == "1.1"
    assert str(t.aggregate_amount(item(2000, 0))) == "2000"
    assert t.aggregate_amount(item(0, 0)) == 0


def test_exponent_spellings_of_the_parts_read_exactly() -> None:
    assert t.aggregate_amount({t.AMOUNT_WHOLE: {"N": "1E+2"}, t.AMOUNT_ATTO: {"N": "0"}}) == 100


@pytest.mark.parametrize("amount", ["-1", "0.0000000000000000001"])
def test_no_ledger_amount_is_refused(amount: str) -> None:
    with pytest.raises(ValueError, match="not a ledger amount"):
        t.aggregate_amount_parts(Decimal(amount))


def test_an_item_without_the_parts_is_an_error_not_zero() -> None:
    """An aggregate item always holds both parts; reading one without them as 0 would lose
    its money silently."""
    with pytest.raises(KeyError):
        t.aggregate_amount({t.RECORD_COUNT: {"N": "1"}})


# Every valid amount: whole and atto parts, not both zero.
ledger_amounts = st.tuples(st.integers(0, 10**20 - 1), st.integers(0, 10**18 - 1)).filter(
    lambda parts: parts != (0, 0)
).map(lambda parts: parse_amount(f"{parts[0]}.{parts[1]:018d}")) | st.sampled_from(
    [LARGEST, SMALLEST, "1", "0.1"]
).map(parse_amount)


@settings(max_examples=300, deadline=None)
@given(ledger_amounts)
def test_parts_are_non_negative_integers_that_make_up_the_amount(amount: Decimal) -> None:
    whole, atto = t.aggregate_amount_parts(amount)
    assert whole >= 0
    assert 0 <= atto < t.ATTO_PER_UNIT
    with exact_arithmetic():
        assert whole + Decimal(atto) / t.ATTO_PER_UNIT == amount


@settings(max_examples=300, deadline=None)
@given(st.lists(ledger_amounts, max_size=60))
def test_any_list_of_valid_amounts_sums_exactly(amounts: list[Decimal]) -> None:
    with exact_arithmetic():
        expected = sum(amounts, Decimal(0))
    decoded = t.aggregate_amount(added(amounts))
    assert decoded == expected
    assert format_amount(decoded) == format_amount(expected)


def test_an_aggregate_of_the_earlier_single_amount_format_is_refused_saying_so() -> None:
    """Read as 0 or as a KeyError, the earlier format's sums were lost without a word."""
    item = {t.PARTITION_KEY: {"S": "AGGREGATE#w#2024-01-01T00:00:00Z#0"}, t.AMOUNT: {"N": "3"}}
    with pytest.raises(t.OlderTableFormat, match="earlier version"):
        t.aggregate_amount(item)
