"""Prometheus metrics of the updater: its passes, the stream records they read, and how far
the read model lags behind the table."""

import math
import time
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

STREAM_RECORDS_READ = Counter(
    "wallet_updater_stream_records_read_total",
    "DynamoDB stream records read by completed updater passes (record and aggregate items "
    "alike; a failed pass's are read again by the next).",
)
PASSES = Counter(
    "wallet_updater_passes_total",
    "Updater passes by outcome: completed (committed), failed (retried by the next pass), "
    "checkpoint_lost (records gone from the stream: only `wallet update --rebuild` helps).",
    ["outcome"],
)
# Every outcome is on the page from the start, at 0: "no failed pass" is a sample, not a gap.
for _outcome in ("completed", "failed", "checkpoint_lost"):
    PASSES.labels(_outcome)
PASS_DURATION = Histogram(
    "wallet_updater_pass_duration_seconds",
    "Time a completed updater pass took, from its start to its last commit.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
LAG = Gauge(
    "wallet_updater_lag_seconds",
    "Seconds since the read model's as_of as the last pass this updater completed stored "
    "it: every record acknowledged before then is in the read model, later ones may not be. "
    "Until this process completes a pass, the stored as_of's age (+Inf when no pass has "
    "ever completed).",
)


class _AsOf:
    """The read model's as_of as epoch seconds (its age is read at scrape time); None while
    no pass is known to have completed."""

    def __init__(self) -> None:
        self.instant: float | None = None

    def age(self) -> float:
        return math.inf if self.instant is None else time.time() - self.instant


_AS_OF = _AsOf()
LAG.set_function(_AS_OF.age)


def start_lag_from(as_of: datetime | None) -> None:
    """Starts the lag from the read model's stored as_of (None: never projected), so that a
    restarted updater reports how far behind the read model is, not how long it has run."""
    _AS_OF.instant = None if as_of is None else as_of.timestamp()


def pass_completed(as_of: datetime, seconds: float, records_read: int) -> None:
    """Counts a committed pass that stored `as_of` and took `seconds`."""
    PASSES.labels("completed").inc()
    PASS_DURATION.observe(seconds)
    STREAM_RECORDS_READ.inc(records_read)
    _AS_OF.instant = as_of.timestamp()


def read_model_age_seconds() -> float:
    """What the lag gauge reads: seconds since the as_of of the last pass this process
    completed (before one, since the stored as_of start_lag_from was given; +Inf before
    either)."""
    return _AS_OF.age()


def pass_failed(*, checkpoint_lost: bool) -> None:
    PASSES.labels("checkpoint_lost" if checkpoint_lost else "failed").inc()
