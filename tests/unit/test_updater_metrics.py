"""The updater's lag: the age of the as_of its last completed pass stored, read at scrape
time."""

import math
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from services.updater import metrics
from tests.metrics_support import sample


def test_lag_is_the_age_of_the_as_of_the_last_completed_pass_stored() -> None:
    metrics.pass_completed(datetime.now(UTC) - timedelta(seconds=30), 0.5, 0)
    assert sample("wallet_updater_lag_seconds") == pytest.approx(30, abs=1)


def test_lag_grows_until_the_next_pass_completes() -> None:
    metrics.pass_completed(datetime.now(UTC) - timedelta(seconds=30), 0.5, 0)
    metrics.pass_failed(checkpoint_lost=False)
    assert sample("wallet_updater_lag_seconds") == pytest.approx(30, abs=1)
    metrics.pass_completed(datetime.now(UTC), 0.5, 0)
    assert sample("wallet_updater_lag_seconds") == pytest.approx(0, abs=1)


def test_lag_starts_from_the_stored_as_of_not_the_process_start() -> None:
    metrics.start_lag_from(datetime.now(UTC) - timedelta(hours=3))
    assert sample("wallet_updater_lag_seconds") == pytest.approx(3 * 3600, abs=1)


def test_lag_is_infinite_while_no_pass_has_ever_completed() -> None:
    metrics.start_lag_from(None)
    assert sample("wallet_updater_lag_seconds") == math.inf
    metrics.pass_completed(datetime.now(UTC), 0.5, 0)
    assert sample("wallet_updater_lag_seconds") == pytest.approx(0, abs=1)


def test_every_pass_outcome_is_listed_before_it_happens() -> None:
    for outcome in ("completed", "failed", "checkpoint_lost"):
        labels = {"outcome": outcome}
        assert REGISTRY.get_sample_value("wallet_updater_passes_total", labels) is not None


def test_passes_are_counted_by_outcome_with_their_records() -> None:
    def counts() -> tuple[float, ...]:
        return (
            sample("wallet_updater_passes_total", outcome="completed"),
            sample("wallet_updater_passes_total", outcome="failed"),
            sample("wallet_updater_passes_total", outcome="checkpoint_lost"),
            sample("wallet_updater_stream_records_read_total"),
            sample("wallet_updater_pass_duration_seconds_count"),
        )

    before = counts()
    metrics.pass_completed(datetime.now(UTC), 0.25, 7)
    metrics.pass_failed(checkpoint_lost=False)
    metrics.pass_failed(checkpoint_lost=True)
    after = counts()
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 7, 1]
