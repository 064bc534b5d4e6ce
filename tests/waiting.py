"""Waiting for a condition with a deadline: tests poll what they need instead of sleeping
for a time that is long enough on an idle machine only."""

import time
from collections.abc import Callable

POLL_SECONDS = 0.05


def wait_until(condition: Callable[[], bool], what: Callable[[], str], timeout: float) -> None:
    """Polls `condition` until true; fails with what() after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what()}")
        time.sleep(POLL_SECONDS)
