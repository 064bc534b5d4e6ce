"""The gateway process in front of misbehaving backends: every gRPC status becomes the HTTP
status the design's table gives, as application/problem+json, and a 5xx never carries a
traceback, an exception or any other internal message. Every answer to a deposit carries
the idempotency key it was tried under, so a 503 or 504 can be retried safely.

`wallet serve gateway` runs as a real process; its command backend is a fake WalletCommand
in this process (real gRPC over a real socket) that fails on demand, chosen by wallet id;
its query backend is a port where nothing listens. The retry after an outage runs against a
real command service whose DynamoDB Local is stopped and started again.
"""

import re
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from harness.processes import tail
from services.ledger.adapters.ledger_table import ensure_table
from services.ledger.domain.errors import FieldViolation, InvalidInput
from services.platform.grpc_errors import abort_invalid
from tests.auth_support import bearer_header, token_for
from tests.e2e.processes import (
    StartCommandService,
    WalletProcess,
    child_env,
    local_client,
    scan_table,
)
from tests.e2e.stack import assert_problem, post_json, problem_fields, record_json
from wallet.v1 import command_pb2, command_pb2_grpc, records_pb2
from wallet_cli.local.dynamodb_local import DynamoDBLocal, free_port

# What a backend might say that must never reach an HTTP client in a 5xx.
SECRET = (
    "Traceback (most recent call last): psycopg.OperationalError: connection to "
    "10.9.8.7 failed: password=hunter2"
)
LEAKS = ("traceback", "hunter2", "10.9.8.7", "psycopg", "exception", "runtimeerror", "grpc")
GATEWAY_DEADLINE = 1.0
SLOW_CALL = 4.0
STARTUP_TIMEOUT = 60.0
# Long enough for a client to see the outage end (a real client would back off longer).
RETRY_TIMEOUT = 60.0
# The outage's gateway waits as long as a deployed one: a 503 or a 504, either may come.
OUTAGE_DEADLINE = 10.0


class FailingCommand(command_pb2_grpc.WalletCommandServicer):
    """Fails as the wallet id says."""

    def RecordTransaction(
        self, request: command_pb2.RecordTransactionRequest, context: grpc.ServicerContext
    ) -> command_pb2.RecordTransactionResponse:
        mode = request.wallet_id
        codes = {
            "internal": grpc.StatusCode.INTERNAL,
            "data-loss": grpc.StatusCode.DATA_LOSS,
            "unimplemented": grpc.StatusCode.UNIMPLEMENTED,
            "failed-precondition": grpc.StatusCode.FAILED_PRECONDITION,
            "unavailable": grpc.StatusCode.UNAVAILABLE,
            "aborted": grpc.StatusCode.ABORTED,
            "exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
            "denied": grpc.StatusCode.PERMISSION_DENIED,
            "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
            "not-found": grpc.StatusCode.NOT_FOUND,
            "exists": grpc.StatusCode.ALREADY_EXISTS,
        }
        if mode in codes:
            context.abort(codes[mode], SECRET)
        if mode == "crash":
            raise RuntimeError(SECRET)
        if mode == "slow":
            time.sleep(SLOW_CALL)
        if mode == "invalid":
            abort_invalid(
                context,
                InvalidInput(
                    [
                        FieldViolation("occurred_at", "is wrong"),
                        FieldViolation("request_id", "is wrong"),
                        FieldViolation("amount", "is wrong"),
                    ]
                ),
            )
        # "bad-record": an answer the gateway cannot render (a year past 9999).
        out_of_range = Timestamp(seconds=400_000_000_000)
        return command_pb2.RecordTransactionResponse(
            record=records_pb2.Record(
                wallet_id=request.wallet_id,
                request_id=request.request_id,
                occurred_at=out_of_range,
                amount=request.amount,
                recorded_at=out_of_range,
            )
        )


@dataclass
class Gateway:
    """The gateway process; `client` is a new connection pool for each test, so one test's
    broken connection cannot fail the next."""

    base_url: str
    process: WalletProcess
    query_port: int
    client: httpx.Client | None = None


@pytest.fixture(scope="module")
def fake_command_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    command_pb2_grpc.add_WalletCommandServicer_to_server(FailingCommand(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=0)


def start_gateway(command_port: int, log_dir: Path, deadline: float = GATEWAY_DEADLINE) -> Gateway:
    """`wallet serve gateway` in front of the command service on `command_port`, once it is
    alive; its query backend is a port where nothing listens."""
    port, query_port = free_port(), free_port()
    env = child_env(
        WALLET_GATEWAY_PORT=str(port),
        WALLET_LISTEN_HOST="127.0.0.1",
        WALLET_COMMAND_ADDRESS=f"127.0.0.1:{command_port}",
        WALLET_QUERY_ADDRESS=f"127.0.0.1:{query_port}",
        WALLET_GATEWAY_DEADLINE_SECONDS=str(deadline),
        WALLET_SHUTDOWN_GRACE_SECONDS="1",
    )
    process = WalletProcess.start(
        ["serve", "gateway"], env, command_port=command_port, log_dir=log_dir
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_until_alive(client, process)
    except BaseException:
        process.stop()
        raise
    return Gateway(f"http://127.0.0.1:{port}", process, query_port)


@pytest.fixture(scope="module")
def lone_gateway(
    fake_command_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gateway = start_gateway(fake_command_port, tmp_path_factory.mktemp("lone-gateway"))
    try:
        yield gateway
        assert gateway.process.process.poll() is None, "the gateway died during the tests"
    finally:
        gateway.process.stop()


@pytest.fixture
def gateway(lone_gateway: Gateway) -> Iterator[Gateway]:
    with httpx.Client(
        base_url=lone_gateway.base_url, timeout=30, headers=bearer_header()
    ) as client:
        lone_gateway.client = client
        yield lone_gateway
        lone_gateway.client = None


def _wait_until_alive(client: httpx.Client, process: WalletProcess) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise AssertionError(f"gateway exited:\n{tail(process.stderr_path)}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway not up after {STARTUP_TIMEOUT} s:\n{tail(process.stderr_path)}")


def client(gateway: Gateway) -> httpx.Client:
    assert gateway.client is not None
    return gateway.client


def record(gateway: Gateway, wallet_id: str, *, send_key: bool = True) -> httpx.Response:
    return post_json(
        client(gateway),
        f"/v1/wallets/{wallet_id}/records",
        record_json("2020-01-01T00:00:00Z", "1"),
        {"Idempotency-Key": f"upstream-{wallet_id}"} if send_key else {},
    )


def generated_key(response: httpx.Response) -> str:
    """The key the gateway chose for a deposit that came without one: a random UUID."""
    key = response.headers["Idempotency-Key"]
    assert uuid.UUID(key).version == 4, key
    return key


def assert_no_internals(response: httpx.Response, status: int) -> None:
    """A bare problem: type, title and status, and nothing a backend said."""
    body = assert_problem(response, status)
    assert set(body) == {"type", "title", "status"}, body
    text = response.text.lower()
    leaked = [word for word in LEAKS if word in text]
    assert not leaked, (leaked, response.text)


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("internal", 500),
        ("data-loss", 500),
        ("unimplemented", 500),
        ("failed-precondition", 500),
        ("crash", 500),
        ("bad-record", 500),
        ("unavailable", 503),
        ("slow", 504),
    ],
)
def test_server_errors_carry_no_internals(gateway: Gateway, mode: str, status: int) -> None:
    response = record(gateway, mode)
    assert_no_internals(response, status)
    assert response.headers["Idempotency-Key"] == f"upstream-{mode}"
    if status in (503, 504):  # both are retryable refusals
        assert response.headers.get("Retry-After") == "1"
    else:
        assert "Retry-After" not in response.headers


@pytest.mark.parametrize(("mode", "status"), [("unavailable", 503), ("slow", 504)])
def test_a_deposit_sent_without_a_key_is_told_the_key_it_may_retry_with(
    gateway: Gateway, mode: str, status: int
) -> None:
    """Finding 9: the generated key was only in a success's body."""
    response = record(gateway, mode, send_key=False)
    assert_no_internals(response, status)
    generated_key(response)


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("aborted", 409),
        ("exhausted", 429),
        ("denied", 403),
        ("unauthenticated", 401),
        ("not-found", 404),
        ("exists", 422),
    ],
)
def test_client_errors_follow_the_status_table(gateway: Gateway, mode: str, status: int) -> None:
    response = record(gateway, mode)
    body = assert_problem(response, status)
    assert body.get("detail") == SECRET  # messages for these statuses are meant for clients
    assert response.headers["Idempotency-Key"] == f"upstream-{mode}"


@pytest.mark.parametrize("mode", ["aborted", "exhausted"])
def test_aborted_and_exhausted_ask_for_a_retry(gateway: Gateway, mode: str) -> None:
    assert record(gateway, mode).headers.get("Retry-After") == "1"


def test_field_violations_use_the_http_field_names(gateway: Gateway) -> None:
    body = assert_problem(record(gateway, "invalid"), 400)
    assert problem_fields(body) == {"datetime", "Idempotency-Key", "amount"}


def test_unreachable_query_service_is_503_without_internals(gateway: Gateway) -> None:
    http = client(gateway)
    for response in (
        http.get("/v1/wallets/alice/balance"),
        http.get(
            "/v1/wallets/alice/history",
            params={"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"},
        ),
        post_json(
            http,
            "/search",
            '{"startDatetime": "2020-01-01T00:00:00Z", "endDatetime": "2020-01-01T01:00:00Z"}',
        ),
    ):
        assert_no_internals(response, 503)
        assert str(gateway.query_port) not in response.text
        assert "connect" not in response.text.lower()


def test_readiness_names_the_backend_that_is_down(gateway: Gateway) -> None:
    response = client(gateway).get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "backends": {"command": True, "query": False}}
    assert client(gateway).get("/healthz").status_code == 200


def _exchange(connection: socket.socket, request: bytes) -> tuple[bytes, bytes]:
    """Sends one HTTP/1.1 request on `connection`; returns (head, body) of the answer, or
    (b"", b"") when the server closed or reset the connection instead."""
    try:
        connection.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return b"", b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head)[1])  # type: ignore[index]
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return b"", b""
            body += chunk
    except ConnectionError:
        return b"", b""
    return head, body


def test_an_unexpected_error_does_not_break_the_connection(gateway: Gateway) -> None:
    """After a 500 from an exception inside the gateway, the next request on the same
    keep-alive connection is still answered, or the 500 said `Connection: close` so that
    clients do not reuse it. (Raw sockets: an HTTP client's pool might hide a dropped
    connection by reconnecting, or not, depending on timing.)"""
    content = record_json("2020-01-01T00:00:00Z", "1").encode()
    host = gateway.base_url.removeprefix("http://")
    failing = (
        f"POST /v1/wallets/bad-record/records HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token_for()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n\r\n"
    ).encode() + content
    healthz = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    address, port = host.split(":")
    with socket.create_connection((address, int(port)), timeout=30) as connection:
        head, body = _exchange(connection, failing)
        assert head.startswith(b"HTTP/1.1 500 "), head
        assert b"Internal error" in body, body
        if re.search(rb"(?im)^connection:\s*close", head):
            return
        after, _ = _exchange(connection, healthz)
    assert after.startswith(b"HTTP/1.1 200 "), (
        "the gateway dropped the keep-alive connection after a 500 that did not say "
        f"`Connection: close` (500 head: {head!r}; next answer: {after!r})"
    )


def post_until_answered(http: httpx.Client, path: str, content: str, key: str) -> httpx.Response:
    """Retries the deposit with its key, as a client does, while the answer says retry."""
    deadline = time.monotonic() + RETRY_TIMEOUT
    while True:
        response = post_json(http, path, content, {"Idempotency-Key": key})
        if response.status_code not in (503, 504) or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def test_a_deposit_refused_in_an_outage_records_once_when_retried_with_its_key(
    restartable_dynamodb: DynamoDBLocal,
    start_command_service: StartCommandService,
    tmp_path: Path,
) -> None:
    """Finding 9 end to end: a client that sent no key gets 503 or 504 while DynamoDB is
    down, retries with the key the answer named once it is back, and is recorded exactly
    once (whether or not the refused attempt's write landed after all)."""
    table_name = "ledger-gateway-outage"
    ensure_table(local_client(restartable_dynamodb), table_name)
    command = start_command_service(restartable_dynamodb, table_name)
    gateway = start_gateway(command.command_port, tmp_path / "gateway", OUTAGE_DEADLINE)
    wallet = "outage-retry"
    path = f"/v1/wallets/{wallet}/records"
    content = record_json("2020-01-01T00:00:00Z", "2.5")
    try:
        with httpx.Client(base_url=gateway.base_url, timeout=30, headers=bearer_header()) as http:
            # A first write warms the command service's connections up, so the outage below
            # has to be noticed on connections that were working.
            warm = post_json(
                http, "/v1/wallets/outage-warm/records", record_json("2020-01-01T00:00:00Z", "1")
            )
            assert warm.status_code == 201, warm.text

            restartable_dynamodb.stop()
            refused = post_json(http, path, content)
            assert refused.status_code in (503, 504), refused.text
            key = generated_key(refused)

            restartable_dynamodb.start()
            retried = post_until_answered(http, path, content, key)
            assert retried.status_code in (200, 201), retried.text
            assert retried.headers["Idempotency-Key"] == retried.json()["request_id"] == key
            again = post_json(http, path, content, {"Idempotency-Key": key})
            assert again.status_code == 200, again.text
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.json() == retried.json()
    finally:
        gateway.process.stop()

    contents = scan_table(local_client(restartable_dynamodb), table_name)
    assert contents.record_totals()[wallet] == (Decimal("2.5"), 1)
    assert contents.aggregate_totals()[wallet] == (Decimal("2.5"), 1)
