"""The metrics port of the gRPC services and the updater: served over HTTP, off at 0, and a
clear error when it cannot be bound."""

import socket

import httpx
import pytest

from services.platform.metrics import serve_metrics
from wallet_cli.local.dynamodb_local import free_port


def test_metrics_are_served_over_http() -> None:
    port = free_port()
    serve_metrics("127.0.0.1", port)
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert "wallet_grpc_call_duration_seconds" in response.text


def test_port_zero_serves_nothing() -> None:
    serve_metrics("127.0.0.1", 0)  # would bind a random port if passed on


def test_a_port_in_use_is_an_error_that_names_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}: the port is in use"):
            serve_metrics("127.0.0.1", port)
