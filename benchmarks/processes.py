"""The environment of a benchmark's `wallet ...` children (harness/processes.py starts and
stops them)."""

import os
from collections.abc import Mapping

from harness.processes import METRICS_PORT_ENVS

# A developer's `wallet dev` may hold the default metrics ports: benchmark children serve
# none (the counters still run; only their HTTP endpoint is off).
METRICS_PORTS_OFF = dict.fromkeys(METRICS_PORT_ENVS, "0")
# Benchmarks sign their own tokens (benchmarks/auth.py): no key source but theirs.
_DROPPED_ENV = ("WALLET_AUTH_JWKS_URL",)


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment (so the DynamoDB Local it points at), without metrics
    ports or a JWKS URL, plus `overrides`."""
    inherited = {name: value for name, value in os.environ.items() if name not in _DROPPED_ENV}
    return {**inherited, "PYTHONUNBUFFERED": "1", **METRICS_PORTS_OFF, **overrides}
