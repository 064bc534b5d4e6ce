"""Authentication and authorization on the whole stack (`wallet dev`), over real sockets:
every bad credential is refused at the gateway and at the gRPC services, and nothing is
written for a refused request."""

import base64
import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import grpc
import httpx
import pytest

from harness.processes import wallet_command
from tests.auth_support import bearer_header, token_for
from tests.e2e.processes import child_env, deposit_request
from tests.e2e.stack import (
    HTTP_TIMEOUT,
    PROBLEM_JSON,
    DevStack,
    new_key,
    new_wallet,
    record_json,
)
from wallet.v1 import command_pb2_grpc, query_pb2, query_pb2_grpc

pytest_plugins = ["tests.e2e.stack_fixtures"]

TARGET = new_wallet("auth-target")
OTHER = new_wallet("auth-other")


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _alg_none_token() -> str:
    payload = token_for(TARGET).split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return _unsigned(claims)


# name -> (Authorization header or None, expected status)
BAD_CREDENTIALS: dict[str, tuple[str | None, int]] = {
    "no token": (None, 401),
    "not bearer": ("Basic d2FsbGV0OndhbGxldA==", 401),
    "malformed": ("Bearer not-a-jwt", 401),
    "expired": (f"Bearer {token_for(TARGET, ttl=timedelta(hours=-1))}", 401),
    "wrong audience": (f"Bearer {token_for(TARGET, audience='another-service')}", 401),
    "wrong issuer": (f"Bearer {token_for(TARGET, issuer='https://evil.test/')}", 401),
    "wrong signature": (
        f"Bearer {token_for(TARGET, secret='an-attackers-secret-0123456789abcdef')}",
        401,
    ),
    "alg none": (f"Bearer {_alg_none_token()}", 401),
    "another wallet's token": (f"Bearer {token_for(OTHER)}", 403),
}


def _requests(wallet: str) -> dict[str, tuple[str, str, str | None]]:
    """route name -> (method, path, JSON body)"""
    return {
        "record": (
            "POST",
            f"/v1/wallets/{wallet}/records",
            record_json("2024-03-01T10:00:00Z", "1.5"),
        ),
        "history": (
            "GET",
            f"/v1/wallets/{wallet}/history?start=2024-03-01T00:00:00Z&end=2024-03-02T00:00:00Z",
            None,
        ),
        "balance": ("GET", f"/v1/wallets/{wallet}/balance", None),
    }


@pytest.fixture
def anonymous(dev_stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev_stack.base_url, timeout=HTTP_TIMEOUT) as client:
        yield client


def _send(
    client: httpx.Client, method: str, path: str, body: str | None, authorization: str | None
) -> httpx.Response:
    headers = {"Idempotency-Key": new_key("auth")}
    if authorization is not None:
        headers["Authorization"] = authorization
    if body is not None:
        headers["Content-Type"] = "application/json"
    return client.request(method, path, content=body, headers=headers)


@pytest.mark.parametrize("route", ["record", "history", "balance"])
@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
def test_bad_credentials_are_refused_as_problems(
    anonymous: httpx.Client, route: str, credential: str
) -> None:
    authorization, status = BAD_CREDENTIALS[credential]
    method, path, body = _requests(TARGET)[route]
    response = _send(anonymous, method, path, body, authorization)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == status
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="wallet-ledger"')
    if status == 403:
        assert 'error="insufficient_scope"' in challenge
    elif authorization is not None:
        assert 'error="invalid_token"' in challenge


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/", '{"datetime": "2024-03-01T10:00:00+00:00", "amount": 1}'),
        (
            "POST",
            "/search",
            '{"startDatetime": "2024-03-01T00:00:00Z", "endDatetime": "2024-03-01T02:00:00Z"}',
        ),
    ],
)
def test_seed_routes_need_a_token_for_default(
    anonymous: httpx.Client, method: str, path: str, body: str
) -> None:
    assert _send(anonymous, method, path, body, None).status_code == 401
    other = f"Bearer {token_for(OTHER)}"
    assert _send(anonymous, method, path, body, other).status_code == 403
    allowed = f"Bearer {token_for('default')}"
    assert _send(anonymous, method, path, body, allowed).status_code in (200, 201)


def test_probes_docs_and_metrics_need_no_token(anonymous: httpx.Client) -> None:
    for path in ("/healthz", "/readyz", "/health-check", "/openapi.json", "/metrics"):
        assert anonymous.get(path).status_code == 200, path


def test_a_narrow_token_works_for_its_wallet_only(anonymous: httpx.Client) -> None:
    mine, theirs = new_wallet("narrow"), new_wallet("narrow-other")
    token = f"Bearer {token_for(mine)}"
    method, path, body = _requests(mine)["record"]
    assert _send(anonymous, method, path, body, token).status_code == 201
    method, path, body = _requests(theirs)["record"]
    assert _send(anonymous, method, path, body, token).status_code == 403


_GRPC_CODE = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}


@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
def test_grpc_services_refuse_the_same_credentials(dev_stack: DevStack, credential: str) -> None:
    authorization, status = BAD_CREDENTIALS[credential]
    metadata = () if authorization is None else (("authorization", authorization),)
    with (
        grpc.insecure_channel(f"127.0.0.1:{dev_stack.ports.command}") as command,
        grpc.insecure_channel(f"127.0.0.1:{dev_stack.ports.query}") as query,
    ):
        record = command_pb2_grpc.WalletCommandStub(command).RecordTransaction
        balance = query_pb2_grpc.WalletQueryStub(query).GetBalance
        with pytest.raises(grpc.RpcError) as refused_record:
            record(
                deposit_request(TARGET, new_key("grpc-auth"), "1"), timeout=10, metadata=metadata
            )
        with pytest.raises(grpc.RpcError) as refused_balance:
            balance(query_pb2.GetBalanceRequest(wallet_id=TARGET), timeout=10, metadata=metadata)
    assert refused_record.value.code() == _GRPC_CODE[status]
    assert refused_balance.value.code() == _GRPC_CODE[status]


def test_nothing_was_written_for_refused_requests_and_the_ledger_reconciles(
    dev_stack: DevStack, anonymous: httpx.Client
) -> None:
    # Runs after the refusals above (pytest keeps file order): all aimed at TARGET.
    for credential in BAD_CREDENTIALS:
        method, path, body = _requests(TARGET)["record"]
        _send(anonymous, method, path, body, BAD_CREDENTIALS[credential][0])
    contents = dev_stack.table()
    assert TARGET not in contents.record_totals()
    assert TARGET not in contents.aggregate_totals()
    balance = anonymous.get(f"/v1/wallets/{TARGET}/balance", headers=bearer_header())
    assert balance.status_code == 200
    assert balance.json()["balance"] == "0"
    reconciled = dev_stack.reconcile_records()
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr


def test_wallet_token_mints_a_token_for_the_named_wallets(anonymous: httpx.Client) -> None:
    wallet = new_wallet("minted")
    minted = subprocess.run(
        wallet_command("token", "--wallet", wallet, "--ttl", "5m"),
        env=child_env(),  # carries the test secret the stack runs with
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    method, path, body = _requests(wallet)["record"]
    assert _send(anonymous, method, path, body, f"Bearer {minted}").status_code == 201
    method, path, body = _requests(OTHER)["balance"]
    assert _send(anonymous, method, path, body, f"Bearer {minted}").status_code == 403
