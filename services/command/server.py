"""Entry point of `wallet serve command`: wires the store into the servicer and serves."""

from services.command.servicer import WalletCommandServicer
from services.ledger.adapters.write_store import DynamoWriteStore, dynamodb_client
from services.platform.grpc_auth import auth_interceptors
from services.platform.grpc_server import GrpcService
from services.platform.settings import CommandSettings
from wallet.v1 import command_pb2, command_pb2_grpc

SERVICE_NAME = command_pb2.DESCRIPTOR.services_by_name["WalletCommand"].full_name


def build(settings: CommandSettings, port: int | None = None) -> GrpcService:
    """The command service on `port` (default: settings.command_port; 0 picks a free one)."""
    interceptors = auth_interceptors(settings)  # first: a bad auth setup stops the start
    store = DynamoWriteStore(
        dynamodb_client(max_pool_connections=settings.grpc_workers),
        settings.table_name,
        settings.aggregate_shards,
    )
    servicer = WalletCommandServicer(store)
    return GrpcService(
        service_names=[SERVICE_NAME],
        add_servicers=lambda server: command_pb2_grpc.add_WalletCommandServicer_to_server(
            servicer, server
        ),
        address=f"{settings.listen_host}:{settings.command_port if port is None else port}",
        workers=settings.grpc_workers,
        max_receive_bytes=settings.grpc_max_receive_bytes,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        interceptors=interceptors,
    )
