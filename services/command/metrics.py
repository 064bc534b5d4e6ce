"""Prometheus metrics of the command service: what the write store decided per call."""

from prometheus_client import Counter

from services.ledger.domain.records import Conflicting, Recorded, RecordOutcome, Replayed

RECORD_OUTCOMES = Counter(
    "wallet_record_outcomes_total",
    "RecordTransaction calls the write store decided: recorded (a new record written), "
    "replayed (same request id and payload), conflicting (same request id, other payload).",
    ["outcome"],
)

_OUTCOME_NAMES: dict[type[RecordOutcome], str] = {
    Recorded: "recorded",
    Replayed: "replayed",
    Conflicting: "conflicting",
}


def count_record_outcome(outcome: RecordOutcome) -> None:
    RECORD_OUTCOMES.labels(_OUTCOME_NAMES[type(outcome)]).inc()
