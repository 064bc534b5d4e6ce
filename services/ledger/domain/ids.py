"""Wallet ids and request ids."""

import re

from services.ledger.domain.errors import InvalidInput

WALLET_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_REQUEST_ID_LENGTH = 255
# Printable ASCII, space included: what an HTTP header value can carry unencoded. Not
# starting or ending with a space, which HTTP drops from a header value: such a key sent
# over gRPC could never be replayed over HTTP.
REQUEST_ID_PATTERN = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")


def parse_wallet_id(text: str, field: str = "wallet_id") -> str:
    if not text:
        raise InvalidInput.single(field, "is required")
    if not WALLET_ID_PATTERN.fullmatch(text):
        raise InvalidInput.single(
            field, "must be 1 to 64 characters of letters, digits, '_' or '-'"
        )
    return text


def parse_request_id(text: str, field: str = "request_id") -> str:
    if not text:
        raise InvalidInput.single(field, "is required")
    if len(text) > MAX_REQUEST_ID_LENGTH:
        raise InvalidInput.single(field, f"must be at most {MAX_REQUEST_ID_LENGTH} characters")
    if not REQUEST_ID_PATTERN.fullmatch(text):
        raise InvalidInput.single(
            field, "must be printable ASCII characters, not starting or ending with a space"
        )
    return text
