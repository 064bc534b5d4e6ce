"""Closed-loop load: N client threads, each sending its next call as soon as the previous
one returned, with every call timed."""

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class Call(Generic[Item, Outcome]):
    """One timed call: what it returned, or the exception it raised instead."""

    item: Item
    outcome: Outcome | None
    error: Exception | None
    seconds: float


@dataclass(frozen=True)
class LoadRun(Generic[Item, Outcome]):
    calls: list[Call[Item, Outcome]]
    elapsed_seconds: float
    """Wall clock from the first call sent to the last answer received."""

    @property
    def latencies(self) -> list[float]:
        """Seconds taken by each call that succeeded."""
        return [call.seconds for call in self.calls if call.error is None]

    @property
    def errors(self) -> list[Exception]:
        return [call.error for call in self.calls if call.error is not None]

    @property
    def successes_per_second(self) -> float:
        return len(self.latencies) / self.elapsed_seconds


def run_concurrently(
    send: Callable[[Item], Outcome], items: Sequence[Item], clients: int
) -> LoadRun[Item, Outcome]:
    """Sends every item once through `send`, from `clients` threads sharing one queue, so
    the last calls overlap as much as the first. An exception fails only its own call."""
    pending: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for item in items:
        pending.put(item)
    stopping = threading.Event()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        try:
            started = time.perf_counter()
            futures = [pool.submit(_client, send, pending, stopping) for _ in range(clients)]
            calls = [call for future in futures for call in future.result()]
            elapsed = time.perf_counter() - started
        finally:
            # On Ctrl-C or an error, the other clients stop after their current call.
            stopping.set()
    return LoadRun(calls, elapsed)


def _client(
    send: Callable[[Item], Outcome],
    pending: queue.SimpleQueue[Item],
    stopping: threading.Event,
) -> list[Call[Item, Outcome]]:
    calls: list[Call[Item, Outcome]] = []
    while not stopping.is_set():
        try:
            item = pending.get_nowait()
        except queue.Empty:
            break
        started = time.perf_counter()
        try:
            outcome = send(item)
        except Exception as error:
            calls.append(Call(item, None, error, time.perf_counter() - started))
        else:
            calls.append(Call(item, outcome, None, time.perf_counter() - started))
    return calls


def combined(runs: Sequence[LoadRun[Item, Outcome]]) -> LoadRun[Item, Outcome]:
    """One run of all the calls of `runs`, as if they had followed each other directly."""
    return LoadRun(
        [call for run in runs for call in run.calls], sum(run.elapsed_seconds for run in runs)
    )
