"""Per-client rate limits at the gateway (429 with Retry-After).

Counted in this process's memory with a moving window: each gateway task limits on its own,
so behind a load balancer with N tasks a client may get up to N times the limit.
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
    def __init__(self, spec: str) -> None:
        self._limits = parse_rate_limit(spec)
        self._window = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

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
