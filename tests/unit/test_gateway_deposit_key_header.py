"""Every answer to a deposit carries the idempotency key it was tried under (finding 9), on
the gateway app as gateway/app.py builds it, called in this process (no sockets), with a
fake command backend that answers as the deposit's amount says."""

import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc.aio import AioRpcError, Metadata

from gateway.app import create_app
from services.platform.settings import GatewaySettings
from tests.auth_support import TEST_SECRET, bearer_header, token_for
from wallet.v1 import command_pb2, records_pb2

V1_DEPOSIT = "/v1/wallets/alice/records"
SEED_DEPOSIT = "/"
DEPOSIT_ROUTES = [V1_DEPOSIT, SEED_DEPOSIT]
# Amounts the fake backend fails on, with the status the gateway must answer.
FAILURES = {
    "unavailable": (grpc.StatusCode.UNAVAILABLE, 503),
    "deadline": (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    "exists": (grpc.StatusCode.ALREADY_EXISTS, 422),
    "aborted": (grpc.StatusCode.ABORTED, 409),
    "internal": (grpc.StatusCode.INTERNAL, 500),
}
CRASH = "crash"


@dataclass
class FakeCommand:
    """RecordTransaction that fails as the amount says, else records each request id once
    and replays it after; `seen` lists the request ids it was called with."""

    seen: list[str] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)

    async def RecordTransaction(
        self, request: command_pb2.RecordTransactionRequest, **_: Any
    ) -> command_pb2.RecordTransactionResponse:
        self.seen.append(request.request_id)
        if request.amount in FAILURES:
            code, _status = FAILURES[request.amount]
            raise AioRpcError(code, Metadata(), Metadata(), "refused", "a test")
        if request.amount == CRASH:
            raise RuntimeError("a bug")
        replayed = request.request_id in self.recorded
        self.recorded.add(request.request_id)
        record = records_pb2.Record(
            wallet_id=request.wallet_id,
            request_id=request.request_id,
            occurred_at=request.occurred_at,
            amount=request.amount,
            recorded_at=request.occurred_at,
        )
        return command_pb2.RecordTransactionResponse(record=record, replayed=replayed)


@dataclass
class FakeBackends:
    command: FakeCommand = field(default_factory=FakeCommand)
    deadline: float = 1.0


@pytest.fixture
def app() -> FastAPI:
    app = create_app(GatewaySettings(auth_hs256_secret=TEST_SECRET))
    app.state.backends = FakeBackends()
    return app


def seen(app: FastAPI) -> list[str]:
    backends: FakeBackends = app.state.backends
    return backends.command.seen


def post(
    app: FastAPI,
    path: str,
    content: str | bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post(
                path,
                content=content,
                headers={"Content-Type": content_type, **(headers or {})},
            )

    return anyio.run(call)


def deposit(amount: str) -> str:
    return f'{{"datetime": "2020-01-01T00:00:00Z", "amount": "{amount}"}}'


def generated_key(response: httpx.Response) -> str:
    """The key the gateway chose and returned: a random (version 4) UUID."""
    key = response.headers["Idempotency-Key"]
    assert uuid.UUID(key).version == 4, key
    return key


@pytest.mark.parametrize("path", DEPOSIT_ROUTES)
def test_a_new_deposit_and_its_replay_carry_the_key(app: FastAPI, path: str) -> None:
    token = bearer_header()
    first = post(app, path, deposit("1"), {**token, "Idempotency-Key": "k-1"})
    again = post(app, path, deposit("1"), {**token, "Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"] == "k-1"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("path", DEPOSIT_ROUTES)
def test_a_generated_key_is_returned_and_is_the_key_recorded(app: FastAPI, path: str) -> None:
    response = post(app, path, deposit("1"), bearer_header())
    assert response.status_code == 201, response.text
    assert seen(app) == [generated_key(response)]


@pytest.mark.parametrize("path", DEPOSIT_ROUTES)
@pytest.mark.parametrize("amount", [*FAILURES, CRASH])
def test_a_failed_deposit_carries_the_key_it_was_tried_under(
    app: FastAPI, path: str, amount: str
) -> None:
    """So a client that sent none can retry a 503 or 504 with it, and be recorded once."""
    status = FAILURES[amount][1] if amount in FAILURES else 500
    response = post(app, path, deposit(amount), bearer_header())
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert seen(app) == [generated_key(response)]

    sent = post(app, path, deposit(amount), {**bearer_header(), "Idempotency-Key": "k-2"})
    assert sent.status_code == status, sent.text
    assert sent.headers["Idempotency-Key"] == "k-2"


@pytest.mark.parametrize("path", DEPOSIT_ROUTES)
@pytest.mark.parametrize(
    ("headers", "content", "content_type", "status"),
    [
        ({}, deposit("1"), "application/json", 401),
        (bearer_header(token_for("bob")), deposit("1"), "application/json", 403),
        (bearer_header(), deposit("1"), "text/plain", 415),
        (bearer_header(), "x" * (16 * 1024 + 1), "application/json", 413),
        (bearer_header(), "{not json", "application/json", 400),
        (bearer_header(), '{"datetime": "2020-01-01T00:00:00", "amount": "1"}', None, 400),
        (bearer_header(), '{"datetime": "2020-01-01T00:00:00Z"}', None, 400),
        (bearer_header(), '{"amount": "1", "extra": 1}', None, 400),
    ],
    ids=[
        "no-token",
        "other-wallet",
        "not-json-type",
        "too-large",
        "bad-json",
        "no-offset",
        "no-amount",
        "unknown-field",
    ],
)
def test_refusals_before_the_backend_carry_the_key_too(
    app: FastAPI,
    path: str,
    headers: dict[str, str],
    content: str,
    content_type: str | None,
    status: int,
) -> None:
    response = post(app, path, content, headers, content_type or "application/json")
    assert response.status_code == status, response.text
    generated_key(response)
    sent = post(
        app,
        path,
        content,
        {**headers, "Idempotency-Key": "k-3"},
        content_type or "application/json",
    )
    assert sent.status_code == status, sent.text
    assert sent.headers["Idempotency-Key"] == "k-3"
    assert seen(app) == []


def test_a_refused_wallet_id_carries_the_key(app: FastAPI) -> None:
    response = post(app, "/v1/wallets/a%20b/records", deposit("1"), bearer_header())
    assert response.status_code == 400, response.text
    generated_key(response)


@pytest.mark.parametrize("path", DEPOSIT_ROUTES)
def test_a_refused_idempotency_key_is_not_echoed(app: FastAPI, path: str) -> None:
    """No key was used: the 400 names the header instead."""
    response = post(app, path, deposit("1"), {**bearer_header(), "Idempotency-Key": "x" * 256})
    assert response.status_code == 400, response.text
    assert "Idempotency-Key" not in response.headers
    assert response.json()["errors"] == [
        {"field": "Idempotency-Key", "message": "must be at most 255 characters"}
    ]


def test_reads_carry_no_key(app: FastAPI) -> None:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get("/v1/wallets/alice/balance")

    assert "Idempotency-Key" not in anyio.run(call).headers


def test_the_openapi_document_declares_the_key_on_every_deposit_answer(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path in ("/v1/wallets/{wallet_id}/records", "/"):
        operation = paths[path]["post"]
        (parameter,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert "generates" in parameter["description"]
        assert "never used as a key" in parameter["description"]
        for status, response in operation["responses"].items():
            assert "Idempotency-Key" in response.get("headers", {}), (path, status)
        assert operation["responses"]["201"]["headers"]["Idempotency-Key"]["required"]
        assert operation["responses"]["200"]["headers"]["Idempotent-Replayed"]["required"]
