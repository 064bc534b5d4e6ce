"""Resident memory of processes, and its peaks sampled in the background."""

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Self

import psutil

SAMPLE_SECONDS = 0.05
# Listing descendants reads every process in /proc (about 2 ms of CPU here), too much to
# do every 50 ms beside the process being measured; a child that lives less than this
# between two listings goes unseen.
DESCENDANTS_SECONDS = 1.0
TREE = "process tree"


class PeakSampler:
    """The largest value seen of each of the figures `measure` returns by name, sampled
    every `interval` seconds by one thread while the context is open. A sample that finds
    a process gone is skipped: once the processes have exited, the samples taken while
    they ran stand."""

    def __init__(
        self, measure: Callable[[], Mapping[str, int]], interval: float, name: str
    ) -> None:
        self.peaks: Counter[str] = Counter()
        self._measure = measure
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sample, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            with contextlib.suppress(psutil.NoSuchProcess):
                for name, value in self._measure().items():
                    self.peaks[name] = max(self.peaks[name], value)
            if self._stopping.wait(self._interval):
                return


class PeakRss(PeakSampler):
    """The largest resident memory seen of a process plus its descendants, sampled
    every `interval` seconds while the context is open."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(_tree_rss(psutil.Process(pid)), interval, "peak-rss")

    @property
    def peak_bytes(self) -> int:
        return self.peaks[TREE]


def _tree_rss(process: psutil.Process) -> Callable[[], dict[str, int]]:
    """Measures `process` and its descendants, listed again every DESCENDANTS_SECONDS."""
    descendants: list[psutil.Process] = []
    listed_at = -DESCENDANTS_SECONDS

    def measure() -> dict[str, int]:
        nonlocal descendants, listed_at
        if time.monotonic() - listed_at >= DESCENDANTS_SECONDS:
            with contextlib.suppress(psutil.NoSuchProcess):
                descendants = process.children(recursive=True)
            listed_at = time.monotonic()
        return {TREE: rss_bytes([process, *descendants])}

    return measure


def rss_bytes(processes: Iterable[psutil.Process]) -> int:
    """Resident bytes of `processes` together; one that has exited counts 0."""
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total
