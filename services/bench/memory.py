"""Peak resident memory of a process tree, sampled in the background."""

import contextlib
import threading
import time

import psutil

SAMPLE_SECONDS = 0.05
# Listing descendants reads every process in /proc (about 2 ms of CPU here), too much to
# do every 50 ms beside the process being measured; a child that lives less than this
# between two listings goes unseen.
DESCENDANTS_SECONDS = 1.0


class PeakRss:
    """The largest resident memory seen of a process plus its descendants, sampled
    every `interval` seconds while the context is open."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.peak_bytes = 0
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _sample(self) -> None:
        descendants: list[psutil.Process] = []
        listed_at = -DESCENDANTS_SECONDS
        while True:
            if time.monotonic() - listed_at >= DESCENDANTS_SECONDS:
                # Once the process has exited, the samples taken while it ran stand.
                with contextlib.suppress(psutil.NoSuchProcess):
                    descendants = self._process.children(recursive=True)
                listed_at = time.monotonic()
            tree_rss = sum(_rss(process) for process in [self._process, *descendants])
            self.peak_bytes = max(self.peak_bytes, tree_rss)
            if self._stopping.wait(self._interval):
                return


def _rss(process: psutil.Process) -> int:
    """Resident bytes, or 0 for a process that has exited."""
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0
