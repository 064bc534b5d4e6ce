"""Exact money: amounts are `Decimal`, never floats."""

import re
from contextlib import AbstractContextManager
from decimal import Context, Decimal, InvalidOperation, localcontext

from services.ledger.domain.errors import InvalidInput

MAX_INTEGER_DIGITS = 20
MAX_FRACTION_DIGITS = 18
# Longer inputs cannot be valid amounts worth parsing; refuse them before Decimal sees them.
_MAX_TEXT_LENGTH = 100
# Digits kept by canonical_amount: more than any amount text or any sum of amounts has.
_EXACT_PRECISION = 200
# Plain decimal syntax with an optional exponent, ASCII digits only. Decimal() alone would
# also accept "1_000", " 1", "NaN", "Infinity" and other scripts' digits ("\u0663" is 3).
_DECIMAL_SYNTAX = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def parse_amount(text: str, field: str = "amount") -> Decimal:
    """Parses a deposit amount exactly.

    Accepts amounts > 0 with at most 20 digits before the decimal point and 18 after,
    once trailing zeros are dropped (so it fits NUMERIC(38,18) and DynamoDB's N exactly).
    Returns the canonical value: "1.10" and "1.1" give the same Decimal, written as "1.1".
    """
    if not text:
        raise InvalidInput.single(field, "is required")
    if len(text) > _MAX_TEXT_LENGTH or not _DECIMAL_SYNTAX.fullmatch(text):
        raise InvalidInput.single(field, "must be a decimal number such as 1.1 or 2e3")
    try:
        value = Decimal(text)  # exact: construction from text ignores the context's precision
    except InvalidOperation as error:  # an exponent beyond Decimal's range: 1e-99999999999999999999
        raise InvalidInput.single(
            field,
            f"must have at most {MAX_INTEGER_DIGITS} digits before the decimal point"
            f" and {MAX_FRACTION_DIGITS} after",
        ) from error
    if value <= 0:
        raise InvalidInput.single(field, "must be greater than zero")
    # Bounds first, from the exponent alone: 1e1000000 or 1e-999999999 must never reach
    # arithmetic, where the context would overflow or round them.
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidInput.single(
            field, f"must have at most {MAX_INTEGER_DIGITS} digits before the decimal point"
        )
    canonical = canonical_amount(value) if value.adjusted() >= -MAX_FRACTION_DIGITS else value
    exponent = canonical.as_tuple().exponent
    assert isinstance(exponent, int)  # finite by the syntax check above
    if -exponent > MAX_FRACTION_DIGITS:
        raise InvalidInput.single(
            field, f"must have at most {MAX_FRACTION_DIGITS} digits after the decimal point"
        )
    return canonical


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A decimal context in which sums of ledger amounts never round (the default keeps 28
    significant digits; an amount alone may have 38)."""
    return localcontext(prec=_EXACT_PRECISION, Emax=_EXACT_PRECISION, Emin=-_EXACT_PRECISION)


def canonical_amount(value: Decimal) -> Decimal:
    """The value without trailing zeros and never in exponent form: 1.10 -> 1.1, 1E+2 -> 100.

    Exact for every value the ledger holds (amounts and sums of them): the context is wide
    enough that normalize() and quantize() never round."""
    with exact_arithmetic():
        normalized = value.normalize()
        exponent = normalized.as_tuple().exponent
        assert isinstance(exponent, int)
        return normalized.quantize(Decimal(1)) if exponent > 0 else normalized


def format_amount(value: Decimal) -> str:
    """Plain decimal notation, as the API and DynamoDB's N want it."""
    return f"{canonical_amount(value):f}"
