"""The gateway's per-client rate limiter: refusals with Retry-After, separate budgets, and
memory that does not grow with the number of clients ever seen."""

import time

import pytest
from limits.storage import MemoryStorage
from time_machine import TimeMachineFixture

from gateway.problems import Problem
from gateway.rate_limit import RateLimiter
from services.platform.settings import parse_rate_limit


def test_a_client_over_its_limit_is_refused_with_retry_after() -> None:
    limiter = RateLimiter(parse_rate_limit("3/minute"))
    for _ in range(3):
        limiter.admit("a")
    with pytest.raises(Problem) as refused:
        limiter.admit("a")
    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    limiter.admit("b")  # another client's budget is its own


def test_a_refused_request_is_not_counted_against_the_other_limits() -> None:
    limiter = RateLimiter(parse_rate_limit("1/minute;5/hour"))
    limiter.admit("a")
    for _ in range(10):
        with pytest.raises(Problem):
            limiter.admit("a")
    limiter.admit("b")


def test_disabled_admits_everything() -> None:
    limiter = RateLimiter(parse_rate_limit("disabled"))
    for _ in range(1000):
        limiter.admit("a")


def test_counters_of_clients_gone_quiet_are_dropped(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(time.time(), tick=False)  # limits reads time.time(): now ours to move
    counters = MemoryStorage()
    limiter = RateLimiter(parse_rate_limit("5/second"), counters)
    for client in range(2000):
        limiter.admit(f"addr:{client}")
    assert len(counters.storage) >= 2000
    # The storage sweeps on its own timer thread, which a request starts when none is
    # pending: let a pending one finish (at the time before the jump), so that the request
    # below starts a sweep that runs after it.
    counters.timer.join()
    time_machine.shift(2.2)  # two windows: the sliding counter's lifetime
    limiter.admit("addr:still-here")
    counters.timer.join()
    assert len(counters.storage) <= 1
