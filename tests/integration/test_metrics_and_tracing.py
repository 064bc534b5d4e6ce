"""The services' metrics and trace ids, over real sockets: the in-process command and query
services count every call by method and status code and every write by its outcome, log the
trace id the caller sent, an updater pass counts what it read, and the query service reports
the read model's age."""

import logging
import math
import re
import time
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.write_store import dynamodb_client
from services.platform.grpc_server import GrpcService
from services.platform.settings import QuerySettings, TableSettings
from services.query import server as query_server
from services.updater.projection_store import ProjectionStore
from services.updater.projector import PassReport, Projector
from services.updater.stream_reader import StreamReader, streams_client
from tests.integration.conftest import deposit_request
from tests.metrics_support import sample
from wallet.v1 import command_pb2_grpc, query_pb2, query_pb2_grpc
from wallet_cli.local.dynamodb_local import free_port

RECORD = "/wallet.v1.WalletCommand/RecordTransaction"
GET_BALANCE = "/wallet.v1.WalletQuery/GetBalance"
OCCURRED = datetime(2024, 3, 10, 14, 5, tzinfo=UTC)
AWS_FORMAT = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}")


def calls(method: str, code: str) -> float:
    return sample("wallet_grpc_calls_total", method=method, code=code)


def outcomes(outcome: str) -> float:
    return sample("wallet_record_outcomes_total", outcome=outcome)


def timed(method: str) -> float:
    return sample("wallet_grpc_call_duration_seconds_count", method=method)


def trace_metadata(trace_id: str) -> tuple[tuple[str, str]]:
    return (("x-amzn-trace-id", trace_id),)


def call_lines(caplog: pytest.LogCaptureFixture, method: str) -> list[dict[str, object]]:
    """The fields of the "call" lines logged for `method` so far."""
    return [
        record.__dict__
        for record in caplog.records
        if record.name == "wallet.calls" and record.getMessage() == "call"
        if record.__dict__.get("method") == method
    ]


def test_records_replays_and_conflicts_are_counted_by_outcome_and_code(
    command_stub: command_pb2_grpc.WalletCommandStub,
) -> None:
    before = {
        "ok": calls(RECORD, "OK"),
        "already_exists": calls(RECORD, "ALREADY_EXISTS"),
        "recorded": outcomes("recorded"),
        "replayed": outcomes("replayed"),
        "conflicting": outcomes("conflicting"),
        "timed": timed(RECORD),
    }

    def changes() -> dict[str, float]:
        now = {
            "ok": calls(RECORD, "OK"),
            "already_exists": calls(RECORD, "ALREADY_EXISTS"),
            "recorded": outcomes("recorded"),
            "replayed": outcomes("replayed"),
            "conflicting": outcomes("conflicting"),
            "timed": timed(RECORD),
        }
        return {name: now[name] - before[name] for name in now if now[name] != before[name]}

    command_stub.RecordTransaction(deposit_request(request_id="m-1", occurred_at=OCCURRED))
    assert changes() == {"ok": 1, "recorded": 1, "timed": 1}

    replay = command_stub.RecordTransaction(deposit_request(request_id="m-1", occurred_at=OCCURRED))
    assert replay.replayed
    assert changes() == {"ok": 2, "recorded": 1, "replayed": 1, "timed": 2}

    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(
            deposit_request(request_id="m-1", occurred_at=OCCURRED, amount="2")
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert changes() == {
        "ok": 2,
        "already_exists": 1,
        "recorded": 1,
        "replayed": 1,
        "conflicting": 1,
        "timed": 3,
    }


def test_invalid_input_is_counted_under_its_code_and_decides_no_outcome(
    command_stub: command_pb2_grpc.WalletCommandStub,
) -> None:
    invalid = calls(RECORD, "INVALID_ARGUMENT")
    decided = [outcomes(name) for name in ("recorded", "replayed", "conflicting")]

    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(deposit_request(occurred_at=OCCURRED, amount="-1"))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert calls(RECORD, "INVALID_ARGUMENT") - invalid == 1
    assert [outcomes(name) for name in ("recorded", "replayed", "conflicting")] == decided


def test_query_calls_are_counted_by_their_method(
    query_stub: query_pb2_grpc.WalletQueryStub,
) -> None:
    before, timed_before = calls(GET_BALANCE, "OK"), timed(GET_BALANCE)
    query_stub.GetBalance(query_pb2.GetBalanceRequest(wallet_id="w1"))
    assert calls(GET_BALANCE, "OK") - before == 1
    assert timed(GET_BALANCE) - timed_before == 1


def test_health_checks_are_not_counted(command_service: GrpcService) -> None:
    check = "/grpc.health.v1.Health/Check"
    before = calls(check, "OK")
    with grpc.insecure_channel(f"127.0.0.1:{command_service.port}") as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert calls(check, "OK") == before


def test_the_trace_id_sent_in_metadata_is_in_the_call_line(
    command_stub: command_pb2_grpc.WalletCommandStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wallet.calls")
    trace_id = "Root=1-67891233-abcdef012345678912345678"

    command_stub.RecordTransaction(
        deposit_request(request_id="traced", occurred_at=OCCURRED),
        metadata=trace_metadata(trace_id),
    )
    command_stub.RecordTransaction(deposit_request(request_id="untraced", occurred_at=OCCURRED))

    traced, untraced = call_lines(caplog, RECORD)
    assert (traced["request_id"], traced["trace_id"]) == ("traced", trace_id)
    assert untraced["request_id"] == "untraced"
    assert AWS_FORMAT.fullmatch(str(untraced["trace_id"]))


def run_pass(settings: TableSettings, database_url: str) -> PassReport:
    """One updater pass over the test's table into the test's read model."""
    engine: Engine = create_database_engine(database_url, pool_size=1)
    projector = Projector(
        StreamReader(dynamodb_client(), streams_client(), settings.table_name),
        ProjectionStore(engine),
    )
    try:
        return projector.run_pass()
    finally:
        engine.dispose()


def test_an_updater_pass_counts_the_stream_records_it_read(
    command_stub: command_pb2_grpc.WalletCommandStub, settings: TableSettings, database_url: str
) -> None:
    for number in range(3):
        command_stub.RecordTransaction(
            deposit_request(request_id=f"u-{number}", occurred_at=OCCURRED)
        )
    completed = sample("wallet_updater_passes_total", outcome="completed")
    read = sample("wallet_updater_stream_records_read_total")
    report = run_pass(settings, database_url)

    # Three records and three aggregate updates, each a stream record.
    assert report.records_read == 6
    assert sample("wallet_updater_stream_records_read_total") - read == 6
    assert sample("wallet_updater_passes_total", outcome="completed") - completed == 1
    assert 0 <= sample("wallet_updater_lag_seconds") < 30


def read_model_age() -> float | None:
    """The query service's gauge as a scrape computes it; None when it has no sample."""
    return REGISTRY.get_sample_value("wallet_read_model_age_seconds")


def test_before_any_pass_the_read_model_age_is_infinite(
    query_stub: query_pb2_grpc.WalletQueryStub,
) -> None:
    # As the answers say "never" with no as_of, the age is unbounded: alerts on it fire.
    answer = query_stub.GetBalance(query_pb2.GetBalanceRequest(wallet_id="w1"))
    assert not answer.HasField("as_of")
    assert read_model_age() == math.inf


def test_after_a_pass_the_read_model_age_is_that_of_the_as_of_the_answers_report(
    command_stub: command_pb2_grpc.WalletCommandStub,
    query_stub: query_pb2_grpc.WalletQueryStub,
    settings: TableSettings,
    database_url: str,
) -> None:
    command_stub.RecordTransaction(deposit_request(request_id="aged", occurred_at=OCCURRED))
    run_pass(settings, database_url)
    time.sleep(1)

    age = read_model_age()
    answer = query_stub.GetBalance(query_pb2.GetBalanceRequest(wallet_id="w1"))

    assert answer.balance == "1.1"
    as_of = answer.as_of.ToDatetime(tzinfo=UTC)
    assert age is not None
    assert 1 <= age < 30
    assert age == pytest.approx((datetime.now(UTC) - as_of).total_seconds(), abs=0.5)


def test_an_unreachable_read_model_has_no_age_sample_and_does_not_hold_the_scrape(
    settings: QuerySettings,
) -> None:
    nothing_listening = f"postgresql://postgres@127.0.0.1:{free_port()}/wallet"
    service = query_server.build(settings, nothing_listening, port=0)  # watches its read model
    try:
        started = time.monotonic()
        assert read_model_age() is None
        assert time.monotonic() - started < 5
    finally:
        service.stop(grace=0)
