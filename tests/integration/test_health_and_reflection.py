"""gRPC health checking and server reflection on the command service."""

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from services.platform.grpc_server import GrpcService


@pytest.fixture
def channel(command_service: GrpcService) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{command_service.port}") as channel:
        yield channel


@pytest.mark.parametrize("service", ["", "wallet.v1.WalletCommand"])
def test_health_reports_serving(channel: grpc.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_does_not_know_other_services(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Check(health_pb2.HealthCheckRequest(service="wallet.v1.Nope"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_wallet_command(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert "wallet.v1.WalletCommand" in services
    assert "grpc.health.v1.Health" in services

    from google.protobuf.descriptor_pool import DescriptorPool

    pool = DescriptorPool(database)
    service = pool.FindServiceByName("wallet.v1.WalletCommand")
    method = service.FindMethodByName("RecordTransaction")
    assert method.input_type.full_name == "wallet.v1.RecordTransactionRequest"
    assert method.output_type.full_name == "wallet.v1.RecordTransactionResponse"
