"""Prometheus metrics of every gRPC service, and the HTTP port that serves a process's
metrics to Prometheus."""

import errno

from prometheus_client import Counter, Histogram, start_http_server

# Calls take a millisecond or two when all is well; the upper buckets catch the slow ones.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CALLS = Counter(
    "wallet_grpc_calls_total",
    "gRPC calls answered, by full method name and status code (health checks not counted).",
    ["method", "code"],
)
CALL_DURATION = Histogram(
    "wallet_grpc_call_duration_seconds",
    "Time from a gRPC call's arrival to its answer, by full method name.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)


def serve_metrics(host: str, port: int) -> None:
    """Serves this process's metrics at http://`host`:`port`/metrics from a daemon thread;
    port 0 serves none. Raises OSError saying why when the port cannot be bound."""
    if port == 0:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        reason = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise OSError(f"cannot serve metrics on {host}:{port}: {reason}") from error
