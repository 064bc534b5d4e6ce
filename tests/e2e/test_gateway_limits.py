"""The gateway's per-client rate limit, and how processes start with auth off or
misconfigured: real `wallet serve` processes over real sockets."""

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from harness.processes import wallet_command
from harness.waiting import wait_until
from tests.auth_support import bearer_header, token_for
from tests.e2e.processes import WalletProcess, child_env
from tests.e2e.stack import HTTP_TIMEOUT, PROBLEM_JSON, STARTUP_TIMEOUT, DevStack, new_wallet
from wallet_cli.local.dynamodb_local import LOCAL_AWS_ENV, free_port

pytest_plugins = ["tests.e2e.stack_fixtures"]

LIMIT = 5  # per minute, so no request of the test can fall out of the window


def start_gateway(env: Mapping[str, str], log_dir: Path) -> tuple[WalletProcess, str]:
    port = free_port()
    process = WalletProcess.start(
        ["serve", "gateway"],
        {**env, "WALLET_GATEWAY_PORT": str(port), "WALLET_LISTEN_HOST": "127.0.0.1"},
        command_port=port,
        log_dir=log_dir,
    )
    base_url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base_url, timeout=5) as client:

        def answers() -> bool:
            assert process.process.poll() is None, process.stderr_text()
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, lambda: f"gateway on {port} never answered /healthz", STARTUP_TIMEOUT)
    return process, base_url


@pytest.fixture
def limited_gateway(dev_stack: DevStack, tmp_path: Path) -> Iterator[str]:
    """A second gateway on the session stack's services, allowing LIMIT requests a minute."""
    env = child_env(
        WALLET_COMMAND_ADDRESS=f"127.0.0.1:{dev_stack.ports.command}",
        WALLET_QUERY_ADDRESS=f"127.0.0.1:{dev_stack.ports.query}",
        WALLET_RATE_LIMIT=f"{LIMIT}/minute",
    )
    process, base_url = start_gateway(env, tmp_path)
    try:
        yield base_url
    finally:
        process.stop()


def test_a_client_over_its_limit_gets_429_with_retry_after(limited_gateway: str) -> None:
    wallet = new_wallet("limited")
    path = f"/v1/wallets/{wallet}/balance"
    first = bearer_header(token_for(subject="client-a"))
    second = bearer_header(token_for(subject="client-b"))
    with httpx.Client(base_url=limited_gateway, timeout=HTTP_TIMEOUT) as client:
        statuses = [client.get(path, headers=first).status_code for _ in range(LIMIT)]
        assert statuses == [200] * LIMIT
        refused = client.get(path, headers=first)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Counted per token subject: another client still has its whole budget.
        assert client.get(path, headers=second).status_code == 200
        # Probes are never limited.
        assert all(client.get("/healthz").status_code == 200 for _ in range(LIMIT + 1))


def test_the_client_address_is_the_one_the_trusted_proxy_appended(limited_gateway: str) -> None:
    """Behind the load balancer (a trusted peer) the client is the rightmost untrusted
    X-Forwarded-For entry: what a client writes into the header itself changes nothing."""
    path = f"/v1/wallets/{new_wallet('spoof')}/balance"
    with httpx.Client(base_url=limited_gateway, timeout=HTTP_TIMEOUT) as client:
        statuses = [
            client.get(path, headers={"X-Forwarded-For": f"10.9.9.{n}, 203.0.113.7"}).status_code
            for n in range(LIMIT + 1)
        ]
    assert statuses == [401] * LIMIT + [429]


def test_requests_without_a_valid_token_are_limited_by_address(limited_gateway: str) -> None:
    path = f"/v1/wallets/{new_wallet('guess')}/balance"
    guesses = [f"Bearer guess-{attempt}" for attempt in range(LIMIT)]
    with httpx.Client(base_url=limited_gateway, timeout=HTTP_TIMEOUT) as client:
        statuses = [
            client.get(path, headers={"Authorization": guess}).status_code for guess in guesses
        ]
        assert statuses == [401] * LIMIT
        assert client.get(path).status_code == 429


def test_auth_disabled_is_said_at_start_and_lets_requests_through(tmp_path: Path) -> None:
    dead = free_port()  # no backend: a request the gateway lets through ends in 503
    env = child_env(
        WALLET_AUTH="disabled",
        WALLET_COMMAND_ADDRESS=f"127.0.0.1:{dead}",
        WALLET_QUERY_ADDRESS=f"127.0.0.1:{dead}",
    )
    process, base_url = start_gateway(env, tmp_path)
    try:
        with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT) as client:
            assert client.get(f"/v1/wallets/{new_wallet('open')}/balance").status_code == 503
    finally:
        process.stop()
    warnings = [
        line for line in process.json_log(strict=False) if line.get("levelname") == "WARNING"
    ]
    assert any("authentication is disabled" in line["message"] for line in warnings)


@pytest.mark.parametrize("service", ["command", "query", "gateway"])
def test_services_without_a_key_source_refuse_to_start(service: str) -> None:
    env = {
        name: value
        for name, value in child_env(
            **LOCAL_AWS_ENV, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"
        ).items()
        if name != "WALLET_AUTH_HS256_SECRET"
    }
    finished = subprocess.run(
        wallet_command("serve", service),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2, finished.stderr
    assert "WALLET_AUTH_JWKS_URL" in finished.stderr
