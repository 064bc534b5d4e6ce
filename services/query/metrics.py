"""The query service's metrics beyond its calls: the age of the read model it answers from,
read from PostgreSQL at each scrape, so it is right whether the updater runs on a schedule,
follows the stream, or has stopped."""

import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.ledger.adapters.read_store import ReadStoreUnavailable

READ_MODEL_AGE = "wallet_read_model_age_seconds"
_HELP = (
    "Seconds since the read model's as_of (the start of the last completed updater pass, as "
    "the query answers report it): records acknowledged since may be missing from answers. "
    "+Inf when no pass has ever completed; no sample while PostgreSQL cannot be read."
)


class ReadModelAge(Collector):
    """Reads the as_of at each scrape, from the store the query service last watched."""

    def __init__(self) -> None:
        self._as_of: Callable[[], datetime | None] | None = None

    def watch(self, as_of: Callable[[], datetime | None]) -> None:
        self._as_of = as_of

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering a collector without describe() would collect, i.e. query, right away.
        yield GaugeMetricFamily(READ_MODEL_AGE, _HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(READ_MODEL_AGE, _HELP)
        age = self._age()
        if age is not None:
            family.add_metric([], age)
        yield family

    def _age(self) -> float | None:
        if self._as_of is None:
            return None
        try:
            as_of = self._as_of()
        except ReadStoreUnavailable:
            # Unknown is not 0 and not old: no sample. The query calls failing say the rest.
            return None
        return math.inf if as_of is None else time.time() - as_of.timestamp()


_READ_MODEL_AGE = ReadModelAge()
REGISTRY.register(_READ_MODEL_AGE)


def watch_read_model(as_of: Callable[[], datetime | None]) -> None:
    """Reports the age of what `as_of` answers (raising ReadStoreUnavailable when it cannot)
    as wallet_read_model_age_seconds. A process watches one read model: the last one given."""
    _READ_MODEL_AGE.watch(as_of)
