"""Entry point of `wallet serve query`: wires the read store into the servicer and serves."""

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.read_store import PostgresReadStore
from services.platform.grpc_auth import auth_interceptors
from services.platform.grpc_server import GrpcService
from services.platform.settings import QuerySettings
from services.query.metrics import watch_read_model
from services.query.servicer import WalletQueryServicer
from wallet.v1 import query_pb2, query_pb2_grpc

SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["WalletQuery"].full_name


def build(settings: QuerySettings, database_url: str, port: int | None = None) -> GrpcService:
    """The query service on `port` (default: settings.query_port; 0 picks a free one)."""
    interceptors = auth_interceptors(settings)  # first: a bad auth setup stops the start
    # A history query is a few index lookups; one that runs for seconds is stuck.
    engine = create_database_engine(
        database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=10_000,
        iam_auth=settings.database_iam_auth,
    )
    store = PostgresReadStore(engine)
    # Read at each scrape, on this engine: its timeouts bound how long a scrape can wait.
    watch_read_model(store.as_of)
    servicer = WalletQueryServicer(store)
    return GrpcService(
        service_names=[SERVICE_NAME],
        add_servicers=lambda server: query_pb2_grpc.add_WalletQueryServicer_to_server(
            servicer, server
        ),
        address=f"{settings.listen_host}:{settings.query_port if port is None else port}",
        workers=settings.grpc_workers,
        max_receive_bytes=settings.grpc_max_receive_bytes,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        interceptors=interceptors,
    )
