"""`wallet serve command` as a process: what operators and tools see from outside."""

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from harness.processes import SERVING, health_status
from tests.e2e.processes import COMMAND_SERVICE, RECORD_METHOD, WalletProcess, deposit_request
from wallet.v1 import command_pb2_grpc


@pytest.mark.parametrize("service", ["", COMMAND_SERVICE])
def test_health_check_says_serving(shared_command_process: WalletProcess, service: str) -> None:
    assert health_status(shared_command_process.command_port, service) == SERVING


def test_health_check_does_not_know_other_services(shared_command_process: WalletProcess) -> None:
    assert health_status(shared_command_process.command_port, "wallet.v1.NoSuchService") is None


def test_reflection_lists_and_describes_the_services(
    shared_command_process: WalletProcess,
) -> None:
    with shared_command_process.channel() as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        # What grpcurl needs to build a call: the file that defines the service.
        command_file = database.FindFileContainingSymbol(COMMAND_SERVICE)

    assert {COMMAND_SERVICE, "grpc.health.v1.Health"} <= services
    assert command_file.package == "wallet.v1"
    assert [service.name for service in command_file.service] == ["WalletCommand"]


def test_one_structured_log_line_per_call(command_process: WalletProcess) -> None:
    calls = [
        (deposit_request("wallet-a", "log-1", "1.5"), "ok"),
        (deposit_request("wallet-b", "log-2", "0.25"), "ok"),
        (deposit_request("wallet-a", "log-1", "1.5"), "replayed"),
        (deposit_request("wallet-a", "log-3", "-1"), "INVALID_ARGUMENT"),
        (deposit_request("wallet-b", "log-2", "7"), "ALREADY_EXISTS"),
    ]
    with command_process.channel() as channel:
        stub = command_pb2_grpc.WalletCommandStub(channel)
        for request, expected in calls:
            try:
                response = stub.RecordTransaction(request, timeout=15)
                outcome = "replayed" if response.replayed else "ok"
            except grpc.RpcError as error:
                outcome = error.code().name
            assert outcome == expected, f"{request.request_id}: {outcome}, not {expected}"

    # Read the log once the process has exited, so that it is complete.
    assert command_process.stop() == 0
    call_lines = command_process.call_log(RECORD_METHOD)
    assert [(line["wallet_id"], line["request_id"], line["outcome"]) for line in call_lines] == [
        (request.wallet_id, request.request_id, expected) for request, expected in calls
    ]
    for line in call_lines:
        latency = line["latency_ms"]
        assert isinstance(latency, int | float), line
        assert not isinstance(latency, bool), line
        assert 0 <= latency < 15_000, line
