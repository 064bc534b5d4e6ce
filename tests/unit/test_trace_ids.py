"""Trace ids: AWS's format when new, the caller's when it is safe to log and echo."""

import re
import time

import pytest

from services.platform.trace_ids import accepted_trace_id, new_trace_id

AWS_FORMAT = re.compile(r"Root=1-([0-9a-f]{8})-[0-9a-f]{24}")


def test_a_new_trace_id_has_the_aws_format_and_the_current_time() -> None:
    before = int(time.time())
    match = AWS_FORMAT.fullmatch(new_trace_id())
    assert match is not None
    assert before <= int(match[1], 16) <= time.time()


def test_new_trace_ids_differ() -> None:
    assert len({new_trace_id() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "received",
    [
        "Root=1-67891233-abcdef012345678912345678",
        "Self=1-67891233-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678",
        "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=1",
        "any-client-chosen-id",
        "x" * 256,
    ],
)
def test_a_received_trace_id_is_kept(received: str) -> None:
    assert accepted_trace_id(received) == received


@pytest.mark.parametrize(
    "received",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param(" Root=1-a", id="leading space"),
        pytest.param("Root=1-a\nforged log line", id="line break"),
        pytest.param("Root=1-é", id="not ASCII"),
        pytest.param("x" * 257, id="too long"),
    ],
)
def test_an_unsafe_or_missing_trace_id_is_replaced_by_a_new_one(received: str | None) -> None:
    assert AWS_FORMAT.fullmatch(accepted_trace_id(received))
