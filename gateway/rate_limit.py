"""Per-client rate limits at the gateway (429 with Retry-After).

Counted in this process's memory with a sliding window counter (two counters per client and
limit, dropped two windows after the client's last request, so memory follows the clients
of the last two windows, however many distinct keys an attacker sends). Each gateway task
limits on its own: behind a load balancer with N tasks a client may get up to N times the
limit.
"""

import math
import time

from limits import RateLimitItem, parse_many, storage, strategies

from gateway.problems import Problem

DISABLED = "disabled"


def parse_rate_limit(spec: str) -> list[RateLimitItem]:
    """The limits of WALLET_RATE_LIMIT ("100/second;2000/minute"), none for "disabled"."""
    return [] if spec == DISABLED else parse_many(spec)


class RateLimiter:
    def __init__(self, spec: str, counters: storage.MemoryStorage | None = None) -> None:
        self._limits = parse_rate_limit(spec)
        self._window = strategies.SlidingWindowCounterRateLimiter(
            counters or storage.MemoryStorage()
        )

    def admit(self, client: str) -> None:
        """Counts one request of `client`, or raises a 429 problem when over a limit (a
        refused request is not counted)."""
        for limit in self._limits:
            if not self._window.test(limit, client):
                stats = self._window.get_window_stats(limit, client)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise Problem(
                    429,
                    f"more than {limit} requests from this client; retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
        for limit in self._limits:
            self._window.hit(limit, client)
