"""Wallet ids ([A-Za-z0-9_-]{1,64}) and request ids (1 to 255 printable ASCII characters)."""

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.ids import parse_request_id, parse_wallet_id

WALLET_ALPHABET = string.ascii_letters + string.digits + "_-"
PRINTABLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F))


@pytest.mark.parametrize("wallet_id", ["default", "a", "A-z_09", "w" * 64, "-", "_", "0123456789"])
def test_wallet_id_accepted(wallet_id: str) -> None:
    assert parse_wallet_id(wallet_id) == wallet_id


@pytest.mark.parametrize(
    "wallet_id",
    [
        pytest.param("", id="empty"),
        pytest.param("w" * 65, id="65 chars"),
        pytest.param("a/b", id="slash"),
        pytest.param("a#b", id="hash"),
        pytest.param("wället", id="unicode letter"),
        pytest.param("ａ", id="fullwidth letter"),  # noqa: RUF001
        pytest.param("٣", id="arabic-indic digit"),
        pytest.param("a b", id="space"),
        pytest.param("a.b", id="dot"),
        pytest.param("a\n", id="trailing newline"),
        pytest.param("a\x00", id="nul"),
    ],
)
def test_wallet_id_rejected(wallet_id: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_wallet_id(wallet_id)
    assert [v.field for v in raised.value.violations] == ["wallet_id"]


@settings(deadline=None)
@given(st.text(alphabet=WALLET_ALPHABET, min_size=1, max_size=64))
def test_any_wallet_id_of_the_alphabet_is_accepted(wallet_id: str) -> None:
    assert parse_wallet_id(wallet_id) == wallet_id


@settings(deadline=None)
@given(
    st.text(alphabet=WALLET_ALPHABET, max_size=30),
    st.characters().filter(lambda c: c not in WALLET_ALPHABET),
    st.text(alphabet=WALLET_ALPHABET, max_size=30),
)
def test_any_wallet_id_with_a_foreign_character_is_rejected(
    before: str, foreign: str, after: str
) -> None:
    with pytest.raises(InvalidInput):
        parse_wallet_id(before + foreign + after)


@pytest.mark.parametrize(
    "request_id",
    [
        "k",
        "r" * 255,
        "with spaces inside",
        PRINTABLE_ASCII.strip(),
        "Root=1-67891233-abcdef012345678912345678",  # an X-Amzn-Trace-Id
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_request_id_accepted(request_id: str) -> None:
    assert parse_request_id(request_id) == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param("", id="empty"),
        pytest.param("r" * 256, id="256 chars"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\nb", id="newline"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\x1b", id="escape"),
        pytest.param("a\x7f", id="delete"),
        pytest.param("kéy", id="non-ascii"),
        pytest.param("k\u200b", id="zero-width space"),
        # HTTP drops these from a header: the key could never be replayed over HTTP.
        pytest.param(" k", id="leading space"),
        pytest.param("k ", id="trailing space"),
        pytest.param(" ", id="space"),
    ],
)
def test_request_id_rejected(request_id: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_request_id(request_id)
    assert [v.field for v in raised.value.violations] == ["request_id"]


@settings(deadline=None)
@given(st.text(alphabet=PRINTABLE_ASCII, min_size=1, max_size=255).filter(lambda s: s == s.strip()))
def test_any_printable_ascii_request_id_is_accepted(request_id: str) -> None:
    assert parse_request_id(request_id) == request_id


@settings(deadline=None)
@given(
    st.text(alphabet=PRINTABLE_ASCII, max_size=100),
    st.characters().filter(lambda c: c not in PRINTABLE_ASCII),
)
def test_any_request_id_with_a_non_printable_character_is_rejected(
    before: str, foreign: str
) -> None:
    with pytest.raises(InvalidInput):
        parse_request_id(before + foreign)
