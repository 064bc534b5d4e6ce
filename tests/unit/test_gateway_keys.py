"""Which idempotency key the gateway uses for a write."""

import pytest
from starlette.datastructures import Headers

from gateway.calls import request_key
from gateway.problems import Problem


def test_idempotency_key_wins_over_the_trace_id() -> None:
    headers = Headers({"Idempotency-Key": "k-1", "X-Amzn-Trace-Id": "Root=1-a-b"})
    assert request_key(headers) == "k-1"


def test_an_invalid_idempotency_key_is_refused_naming_the_header() -> None:
    with pytest.raises(Problem) as raised:
        request_key(Headers({"Idempotency-Key": "x" * 256}))
    assert raised.value.status == 400
    assert list(raised.value.errors) == ["Idempotency-Key"]


def test_a_retry_through_another_load_balancer_hop_keeps_its_key() -> None:
    """ALBs add or rewrite Self= on every request; only Root= identifies the client's call."""
    first = Headers({"X-Amzn-Trace-Id": "Self=1-67891234-12456789abcdef012345678;Root=1-a-b"})
    retry = Headers({"X-Amzn-Trace-Id": "Self=1-67891299-99999999abcdef012345678;Root=1-a-b"})
    assert request_key(first) == request_key(retry) == "Root=1-a-b"


def test_a_trace_id_without_root_is_used_whole() -> None:
    assert request_key(Headers({"X-Amzn-Trace-Id": "custom-trace-7"})) == "custom-trace-7"


def test_without_either_header_a_new_key_is_generated() -> None:
    assert request_key(Headers({})) != request_key(Headers({}))
