"""Which idempotency key the gateway uses for a deposit."""

import uuid

import pytest
from starlette.datastructures import Headers

from gateway.idempotency import request_key
from gateway.problems import Problem


def test_the_idempotency_key_is_used_as_sent() -> None:
    headers = Headers({"Idempotency-Key": "k-1", "X-Amzn-Trace-Id": "Root=1-a-b"})
    assert request_key(headers) == "k-1"


def test_an_invalid_idempotency_key_is_refused_naming_the_header() -> None:
    with pytest.raises(Problem) as raised:
        request_key(Headers({"Idempotency-Key": "x" * 256}))
    assert raised.value.status == 400
    assert list(raised.value.errors) == ["Idempotency-Key"]


def test_a_key_sent_twice_is_refused_rather_than_one_picked() -> None:
    """A proxy may merge the two into "a, b", which would be a new deposit's key."""
    headers = Headers(raw=[(b"idempotency-key", b"a"), (b"idempotency-key", b"b")])
    with pytest.raises(Problem) as raised:
        request_key(headers)
    assert raised.value.status == 400
    assert list(raised.value.errors) == ["Idempotency-Key"]


def test_two_deposits_of_one_trace_get_two_keys() -> None:
    """Every call of one distributed trace shares its Root=: a key taken from it would
    record the second deposit of a trace as a replay of the first (finding 1)."""
    first = Headers({"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=a1"})
    second = Headers({"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=b2"})
    keys = {request_key(first), request_key(second)}
    assert len(keys) == 2
    assert not any("Root=" in key or "5759e988" in key for key in keys)


def test_a_trace_id_that_is_a_valid_key_is_not_used_as_one() -> None:
    key = request_key(Headers({"X-Amzn-Trace-Id": "custom-trace-7"}))
    assert key != "custom-trace-7"
    assert uuid.UUID(key).version == 4


def test_without_a_key_each_deposit_gets_a_new_random_one() -> None:
    first, second = request_key(Headers({})), request_key(Headers({}))
    assert first != second
    assert uuid.UUID(first).version == uuid.UUID(second).version == 4
