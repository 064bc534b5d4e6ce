"""The gateway's keep-alive timeout (WALLET_GATEWAY_KEEP_ALIVE_SECONDS), on a real
`wallet serve gateway` process.

HTTP/1.1 has a race the gateway cannot win alone: when it closes an idle connection just as
its peer sends a request on it, the request fails (RFC 9112, 9.3.1). The load balancer in
front of it would answer that request 502. The one fix is the order of the timeouts: the
peer must give up on an idle connection before the gateway does. On AWS the load balancer
drops them after 60 s and the gateway after 75 s (terraform/alb.tf; the drift test checks
the relation).

So these tests check what the gateway owes its peers: an idle connection stays usable for
the whole keep-alive (the same connection answers, not a new one), the setting is what
decides that, the default outlasts the old 5 s that made the load test fail, and a peer
that gives up first, as the load balancer does, never meets a closed connection however
close to either timeout it sends. A peer that keeps connections longer than the gateway is
not tested here: it fails now and then by design, the race above.

The pauses are the idle times under test, not waits for a condition.
"""

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.processes import tail
from harness.waiting import wait_until
from services.platform.settings import GatewaySettings
from tests.e2e.processes import WalletProcess, child_env
from wallet_cli.local.dynamodb_local import free_port

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE: int = GatewaySettings.model_fields["gateway_keep_alive_seconds"].default
# The keep-alive the old default had (uvicorn's): a client keeping connections 6 s failed.
OLD_DEFAULT = 5
SHORT_KEEP_ALIVE = 2
# Between the end of a response and the start of the client's pause, on a loaded machine:
# the gateway's idle clock starts before the client's.
LAG = 0.5


@dataclass(frozen=True)
class Gateway:
    process: WalletProcess
    base_url: str


StartGateway = Callable[..., Gateway]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[StartGateway]:
    """Starts `wallet serve gateway` (no backends: only /healthz is asked) with these
    settings, and returns it once /healthz answers; stops it at teardown."""
    started: list[WalletProcess] = []

    def start(**env: str) -> Gateway:
        port = free_port()
        process = WalletProcess.start(
            ["serve", "gateway"],
            child_env(
                WALLET_GATEWAY_PORT=str(port),
                WALLET_LISTEN_HOST="127.0.0.1",
                WALLET_COMMAND_ADDRESS=f"127.0.0.1:{free_port()}",
                WALLET_QUERY_ADDRESS=f"127.0.0.1:{free_port()}",
                **env,
            ),
            command_port=port,
            log_dir=tmp_path / "logs",
        )
        started.append(process)
        gateway = Gateway(process, f"http://127.0.0.1:{port}")
        wait_until(
            lambda: answers(gateway),
            lambda: f"gateway not answering /healthz:\n{tail(process.stderr_path)}",
            READY_TIMEOUT,
        )
        return gateway

    try:
        yield start
    finally:
        for process in started:
            process.stop()


def answers(gateway: Gateway) -> bool:
    assert gateway.process.process.poll() is None, tail(gateway.process.stderr_path)
    try:
        return httpx.get(f"{gateway.base_url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def client(base_url: str, keepalive_expiry: float) -> httpx.Client:
    """A client with one connection, kept idle for up to `keepalive_expiry` seconds."""
    limits = httpx.Limits(
        max_connections=1, max_keepalive_connections=1, keepalive_expiry=keepalive_expiry
    )
    return httpx.Client(base_url=base_url, timeout=10, limits=limits)


def local_address(response: httpx.Response) -> tuple[str, int]:
    """The client's end of the connection that carried the response."""
    address: tuple[str, int] = response.extensions["network_stream"].get_extra_info("client_addr")
    return address


def healthz(http: httpx.Client) -> tuple[str, int]:
    """GET /healthz, which must answer 200; the connection it came on."""
    response = http.get("/healthz")
    assert response.status_code == 200, response.text
    return local_address(response)


def reused_after(http: httpx.Client, idle: float) -> bool:
    """Whether a request after `idle` seconds of silence went out on the connection of the
    request before (False: the client found it closed and opened another). Any transport
    error fails the test."""
    before = healthz(http)
    time.sleep(idle)
    return healthz(http) == before


def test_default_keep_alive_holds_an_idle_connection_past_the_old_five_seconds(
    start_gateway: StartGateway,
) -> None:
    """With its defaults the gateway still answers on a connection idle for 6 s. Under the
    old 5 s it had closed it: the client saw that and reconnected, or, a moment later, sent
    its request as the gateway closed and failed (the load test's ReadError)."""
    assert DEFAULT_KEEP_ALIVE > OLD_DEFAULT + 1 + LAG
    gateway = start_gateway()
    with client(gateway.base_url, keepalive_expiry=DEFAULT_KEEP_ALIVE) as http:
        assert reused_after(http, OLD_DEFAULT + 1), "the gateway closed it"


def test_the_setting_decides_how_long_an_idle_connection_is_kept(
    start_gateway: StartGateway,
) -> None:
    """Kept until just before the keep-alive; closed (cleanly: the client sees it and
    reconnects, no error) after it."""
    gateway = start_gateway(WALLET_GATEWAY_KEEP_ALIVE_SECONDS=str(SHORT_KEEP_ALIVE))
    with client(gateway.base_url, keepalive_expiry=10 * SHORT_KEEP_ALIVE) as http:
        assert reused_after(http, SHORT_KEEP_ALIVE - LAG), "closed before its keep-alive"
        assert not reused_after(http, SHORT_KEEP_ALIVE + 2 * LAG), "kept past its keep-alive"


def test_a_peer_that_gives_up_first_never_meets_a_closed_connection(
    start_gateway: StartGateway,
) -> None:
    """A client that drops idle connections LAG before the gateway, as the load balancer
    does 15 s before it: requests after pauses around its own expiry and around the
    gateway's keep-alive all succeed, and those before the expiry reuse the connection
    (so the sweep does test reuse near the gateway's timeout)."""
    gateway = start_gateway(WALLET_GATEWAY_KEEP_ALIVE_SECONDS=str(SHORT_KEEP_ALIVE))
    expiry = SHORT_KEEP_ALIVE - LAG
    offsets = (-0.2, -0.1, -0.05, -0.02, 0.02, 0.05, 0.1)
    with client(gateway.base_url, keepalive_expiry=expiry) as http:
        near_expiry = {offset: reused_after(http, expiry + offset) for offset in offsets}
        for offset in offsets:
            reused_after(http, SHORT_KEEP_ALIVE + offset)
    # A tenth of a second and more before the client's expiry, the connection is reused.
    assert all(near_expiry[offset] for offset in offsets if offset <= -0.1), near_expiry


def test_an_idle_connection_does_not_hold_up_a_stop(start_gateway: StartGateway) -> None:
    """A long keep-alive must not delay SIGTERM: an idle connection is closed at once, not
    waited for until the grace period ends."""
    grace = 30
    gateway = start_gateway(WALLET_SHUTDOWN_GRACE_SECONDS=str(grace))
    popen = gateway.process.process
    with client(gateway.base_url, keepalive_expiry=DEFAULT_KEEP_ALIVE) as http:
        healthz(http)  # the connection now idles in the pool, open at both ends
        sent_at = time.monotonic()
        popen.send_signal(signal.SIGTERM)
        exit_code = popen.wait(grace + STOP_TIMEOUT)
        stopped_after = time.monotonic() - sent_at
    # uvicorn re-raises SIGTERM once it has stopped gracefully (since 0.29).
    assert exit_code in (0, -signal.SIGTERM), tail(gateway.process.stderr_path)
    assert stopped_after < STOP_TIMEOUT, f"stopped {stopped_after:.1f} s after SIGTERM"
