"""The gRPC servers' bounds: an oversized request is refused before it is read, and calls
beyond the concurrency bound are refused at once rather than queued."""

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import grpc
import pytest

from services.command import server as command_server
from services.platform.grpc_server import GrpcService
from services.platform.settings import CommandSettings
from tests.auth_support import authenticated_channel
from tests.integration.conftest import Scan, deposit_request
from wallet.v1 import command_pb2_grpc

OCCURRED_AT = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
BOUND = 2
HELD_CALL_DEADLINE = 3.0  # shorter than the store's own timeouts on a silent endpoint


def test_a_request_over_the_size_limit_is_refused_and_writes_nothing(
    command_stub: command_pb2_grpc.WalletCommandStub, settings: CommandSettings, scan: Scan
) -> None:
    oversized = deposit_request(
        occurred_at=OCCURRED_AT, amount="1" * (settings.grpc_max_receive_bytes + 1)
    )
    with pytest.raises(grpc.RpcError) as refused:
        command_stub.RecordTransaction(oversized, timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert scan() == []


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers: calls to it hang until the
    client's read timeout, holding their gRPC slot."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.fixture
def bounded_service(
    settings: CommandSettings, black_hole: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GrpcService]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", black_hole)
    bounded = settings.model_copy(update={"grpc_max_concurrent_rpcs": BOUND})
    service = command_server.build(bounded, port=0)
    service.start()
    yield service
    service.stop(grace=0)


def test_calls_beyond_the_concurrency_bound_are_refused_at_once(
    bounded_service: GrpcService,
) -> None:
    with authenticated_channel(f"127.0.0.1:{bounded_service.port}") as channel:
        stub = command_pb2_grpc.WalletCommandStub(channel)

        def call(number: int) -> grpc.StatusCode:
            request = deposit_request(request_id=f"bound-{number}", occurred_at=OCCURRED_AT)
            try:
                stub.RecordTransaction(request, timeout=HELD_CALL_DEADLINE)
            except grpc.RpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        with ThreadPoolExecutor(BOUND + 3) as pool:
            codes = list(pool.map(call, range(BOUND + 3)))
    # BOUND calls hold their slots, waiting on the store, until the client gives up; the
    # rest are turned away with RESOURCE_EXHAUSTED instead of queueing behind them.
    assert sorted(codes, key=str) == sorted(
        [grpc.StatusCode.DEADLINE_EXCEEDED] * BOUND + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3,
        key=str,
    ), codes
