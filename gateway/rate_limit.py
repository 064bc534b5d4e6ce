"""Per-client rate limits at the gateway (429 with Retry-After).

Counted in this process's memory with a sliding window counter (two counters per client and
limit, dropped two windows after the client's last request, so memory follows the clients
of the last two windows, however many distinct keys an attacker sends). Each gateway task
limits on its own: behind a load balancer with N tasks a client may get up to N times the
limit.

A client without a token is counted by its address, which uvicorn takes from X-Forwarded-For
when the peer is a trusted proxy (WALLET_TRUSTED_PROXIES): the rightmost entry that no
trusted proxy added, so what the client wrote into the header itself changes nothing.
"""

import logging
import math
import time

from limits import RateLimitItem, storage, strategies

from gateway.problems import Problem

# What uvicorn reads as "trust every peer" (exactly this; "*" in a list is no wildcard).
EVERY_PEER = "*"

log = logging.getLogger("wallet.gateway")


def warn_if_every_peer_is_trusted(trusted_proxies: str) -> None:
    """Logs a warning when WALLET_TRUSTED_PROXIES is "*". Accepted, like WALLET_AUTH=disabled,
    for local experiments only: uvicorn then takes the client's address from the leftmost
    X-Forwarded-For entry, which the client writes itself, so any client that can reach the
    gateway picks whom its requests count against."""
    if trusted_proxies == EVERY_PEER:
        log.warning(
            "WALLET_TRUSTED_PROXIES=* trusts X-Forwarded-For from every peer: any client can "
            "choose the address its requests are rate-limited as; list the proxies' addresses "
            "or ranges instead (on AWS the VPC's CIDR ranges)"
        )


class RateLimiter:
    def __init__(
        self, limits: tuple[RateLimitItem, ...], counters: storage.MemoryStorage | None = None
    ) -> None:
        """`limits`: WALLET_RATE_LIMIT as GatewaySettings parsed it (none: every request
        is admitted)."""
        self._limits = limits
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
