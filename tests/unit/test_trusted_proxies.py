"""WALLET_TRUSTED_PROXIES (finding 8): the VPC's ranges name the client the load balancer
saw; "*" lets the client name itself, so the gateway warns when it is set.

The address is taken by uvicorn's ProxyHeadersMiddleware, which `wallet serve gateway` runs
with `forwarded_allow_ips=WALLET_TRUSTED_PROXIES`; these tests call it as uvicorn does."""

import logging

import anyio
import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.app import create_app
from services.platform.settings import GatewaySettings
from tests.auth_support import TEST_SECRET

LOAD_BALANCER = "10.0.3.17"  # a node of the load balancer, inside the VPC
VPC_RANGES = "10.0.0.0/16"
CLIENT = "203.0.113.7"  # what the load balancer appends: the peer it saw
FORGED = "198.51.100.99"  # what the client itself wrote into X-Forwarded-For


def client_address(trusted_proxies: str, forwarded_for: str) -> str:
    """The client address the gateway sees for a request from the load balancer."""
    seen: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        client = scope["client"]
        assert isinstance(client, tuple)
        seen.append(client[0])

    scope = {
        "type": "http",
        "client": (LOAD_BALANCER, 41000),
        "headers": [(b"x-forwarded-for", forwarded_for.encode())],
    }
    middleware = ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies)  # type: ignore[arg-type]
    anyio.run(middleware, scope, None, None)  # type: ignore[arg-type]
    return seen[0]


def test_with_the_vpc_ranges_a_forged_entry_changes_nothing() -> None:
    assert client_address(VPC_RANGES, f"{FORGED}, {CLIENT}") == CLIENT
    assert client_address(VPC_RANGES, CLIENT) == CLIENT


def test_with_every_peer_trusted_the_client_names_itself() -> None:
    """Why "*" is wrong behind a load balancer that appends to the header."""
    assert client_address("*", f"{FORGED}, {CLIENT}") == FORGED


def warnings_at_start(caplog: pytest.LogCaptureFixture, trusted_proxies: str) -> list[str]:
    caplog.set_level(logging.WARNING, logger="wallet.gateway")
    create_app(GatewaySettings(auth_hs256_secret=TEST_SECRET, trusted_proxies=trusted_proxies))
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "wallet.gateway" and "WALLET_TRUSTED_PROXIES" in record.getMessage()
    ]


def test_the_gateway_warns_when_every_peer_is_trusted(caplog: pytest.LogCaptureFixture) -> None:
    (warning,) = warnings_at_start(caplog, "*")
    assert "any client can choose" in warning


@pytest.mark.parametrize("trusted_proxies", ["127.0.0.1", VPC_RANGES, "10.0.0.0/16,10.1.0.0/16"])
def test_listed_proxies_start_without_a_warning(
    caplog: pytest.LogCaptureFixture, trusted_proxies: str
) -> None:
    assert warnings_at_start(caplog, trusted_proxies) == []
