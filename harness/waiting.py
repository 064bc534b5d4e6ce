"""Waiting for a condition with a deadline: tests and benchmarks poll what they need instead
of sleeping for a time that is long enough on an idle machine only."""

import time
from collections.abc import Callable

POLL_SECONDS = 0.05


class NotInTime(AssertionError):
    """What was waited for did not come true within its deadline, or never will (a child
    process it needed has exited). An AssertionError: in a test it is a failed check."""


def wait_until(
    condition: Callable[[], bool],
    what: Callable[[], str],
    timeout: float,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Polls `condition` until true; fails with what() after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise NotInTime(f"not within {timeout} s: {what()}")
        time.sleep(poll_seconds)
