"""SIGTERM as an interrupt, so a stopped benchmark still cleans up after itself."""

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interrupted_by_sigterm() -> Iterator[None]:
    """Turns SIGTERM into KeyboardInterrupt while the block runs: a benchmark stopped by
    `kill` or a scheduler then stops its children and drops its database, as on Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
