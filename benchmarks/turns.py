"""Timing several ways to get an answer against each other in one run."""

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

Case = TypeVar("Case")


def timed_in_turns(
    fetches: Mapping[Case, Callable[[], object]], calls: int, warmup: int
) -> dict[Case, list[float]]:
    """Seconds per call of each fetch, after `warmup` untimed calls of each. The fetches
    take turns within each round, so a change in the machine's load during the run weighs
    on all of them alike."""
    for fetch in fetches.values():
        for _ in range(warmup):
            fetch()
    latencies: dict[Case, list[float]] = {case: [] for case in fetches}
    for _ in range(calls):
        for case, fetch in fetches.items():
            started = time.perf_counter()
            fetch()
            latencies[case].append(time.perf_counter() - started)
    return latencies
