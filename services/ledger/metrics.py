"""Prometheus metrics of the gRPC services and the write store, and the HTTP port that
serves a process's metrics to Prometheus."""

import errno

from prometheus_client import Counter, Histogram, start_http_server

from services.ledger.domain.records import Conflicting, Recorded, RecordOutcome, Replayed

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
RECORD_OUTCOMES = Counter(
    "wallet_record_outcomes_total",
    "RecordTransaction calls the write store decided: recorded (a new record written), "
    "replayed (same request id and payload), conflicting (same request id, other payload).",
    ["outcome"],
)
TRANSACTION_RETRIES = Counter(
    "wallet_dynamodb_transaction_retries_total",
    "DynamoDB transactions the write store retried, by the cancellation reason (throttling "
    "is retried inside botocore and not counted here).",
    ["reason"],
)

_OUTCOME_NAMES: dict[type[RecordOutcome], str] = {
    Recorded: "recorded",
    Replayed: "replayed",
    Conflicting: "conflicting",
}


def count_record_outcome(outcome: RecordOutcome) -> None:
    RECORD_OUTCOMES.labels(_OUTCOME_NAMES[type(outcome)]).inc()


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
