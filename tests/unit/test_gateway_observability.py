"""The gateway's request metrics, request log line and trace ids, on a small app wired as
gateway/app.py wires the gateway, called in this process (no sockets)."""

import logging
import re

import anyio
import httpx
import pytest
from fastapi import FastAPI

from gateway import observability, problems
from gateway.app import create_app
from services.platform.settings import GatewaySettings
from tests.auth_support import TEST_SECRET
from tests.metrics_support import sample

AWS_FORMAT = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}")
REQUESTS = "wallet_http_requests_total"


def small_app() -> FastAPI:
    app = FastAPI()
    app.add_exception_handler(problems.Problem, problems.problem_handler)
    app.add_exception_handler(
        Exception, observability.with_trace_header(problems.unexpected_error_handler)
    )
    app.add_middleware(observability.RequestObservability)
    app.add_api_route(observability.METRICS_PATH, observability.metrics, include_in_schema=False)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"trace_id": observability.current_trace_id()}

    @app.get("/refused/{thing_id}")
    async def refused(thing_id: str) -> None:
        raise problems.Problem(409, "try again")

    @app.get("/broken/{thing_id}")
    async def broken(thing_id: str) -> None:
        raise RuntimeError("a bug")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def get(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get(path, headers=headers)

    return anyio.run(call)


@pytest.fixture
def app() -> FastAPI:
    return small_app()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="wallet.requests")
    return caplog


def request_lines(logs: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The "request" lines logged so far in the test, with the fields every line has."""
    fields = ("method", "route", "status", "trace_id")
    return [
        {field: getattr(record, field) for field in fields}
        for record in logs.records
        if record.name == "wallet.requests"
    ]


def test_the_trace_id_sent_is_kept_for_the_request_and_echoed(
    app: FastAPI, logs: pytest.LogCaptureFixture
) -> None:
    trace_id = "Root=1-67891233-abcdef012345678912345678"
    response = get(app, "/things/a", {"X-Amzn-Trace-Id": trace_id})
    assert response.status_code == 200
    assert response.json() == {"trace_id": trace_id}
    assert response.headers["X-Amzn-Trace-Id"] == trace_id
    assert request_lines(logs) == [
        {"method": "GET", "route": "/things/{thing_id}", "status": 200, "trace_id": trace_id}
    ]
    assert logs.records[-1].__dict__["latency_ms"] >= 0


def test_without_a_trace_id_the_request_gets_a_new_one(app: FastAPI) -> None:
    first, second = get(app, "/things/a"), get(app, "/things/a")
    assert AWS_FORMAT.fullmatch(first.headers["X-Amzn-Trace-Id"])
    assert first.json()["trace_id"] == first.headers["X-Amzn-Trace-Id"]
    assert second.headers["X-Amzn-Trace-Id"] != first.headers["X-Amzn-Trace-Id"]


def test_an_unsafe_trace_id_is_replaced(app: FastAPI) -> None:
    response = get(app, "/things/a", {"X-Amzn-Trace-Id": "x" * 300})
    assert AWS_FORMAT.fullmatch(response.headers["X-Amzn-Trace-Id"])


def test_requests_are_counted_by_route_template_method_and_status(app: FastAPI) -> None:
    ok = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    refused = {"method": "GET", "route": "/refused/{thing_id}", "status": "409"}
    before_ok, before_refused = sample(REQUESTS, **ok), sample(REQUESTS, **refused)
    timed_before = sample(
        "wallet_http_request_duration_seconds_count", method="GET", route="/things/{thing_id}"
    )

    for thing in ("a", "b", "c"):
        get(app, f"/things/{thing}")
    assert get(app, "/refused/a").status_code == 409

    assert sample(REQUESTS, **ok) - before_ok == 3
    assert sample(REQUESTS, **refused) - before_refused == 1
    timed = sample(
        "wallet_http_request_duration_seconds_count", method="GET", route="/things/{thing_id}"
    )
    assert timed - timed_before == 3


def test_unknown_paths_and_methods_do_not_make_new_label_values(app: FastAPI) -> None:
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before = sample(REQUESTS, **unmatched)
    for number in range(3):
        assert get(app, f"/no/such/path/{number}").status_code == 404
    assert sample(REQUESTS, **unmatched) - before == 3


def test_an_unexpected_error_is_a_500_with_the_trace_id_counted_and_logged(
    app: FastAPI, logs: pytest.LogCaptureFixture
) -> None:
    labels = {"method": "GET", "route": "/broken/{thing_id}", "status": "500"}
    before = sample(REQUESTS, **labels)
    trace_id = "Root=1-67891233-000000000000000000000500"

    response = get(app, "/broken/a", {"X-Amzn-Trace-Id": trace_id})

    assert response.status_code == 500
    assert response.headers["content-type"] == problems.PROBLEM_MEDIA_TYPE
    assert response.headers["X-Amzn-Trace-Id"] == trace_id
    assert sample(REQUESTS, **labels) - before == 1
    line = {"method": "GET", "route": "/broken/{thing_id}", "status": 500, "trace_id": trace_id}
    assert line in request_lines(logs)


def test_metrics_are_served_and_not_counted_themselves(app: FastAPI) -> None:
    get(app, "/things/a")
    before = sample(REQUESTS, method="GET", route=observability.METRICS_PATH, status="200")
    response = get(app, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'wallet_http_requests_total{method="GET",route="/things/{thing_id}",status="200"}' in (
        response.text
    )
    assert "X-Amzn-Trace-Id" not in response.headers
    assert sample(REQUESTS, method="GET", route=observability.METRICS_PATH, status="200") == before


def test_successful_probes_are_counted_but_not_logged(
    app: FastAPI, logs: pytest.LogCaptureFixture
) -> None:
    before = sample(REQUESTS, method="GET", route="/healthz", status="200")
    assert get(app, "/healthz").status_code == 200
    assert sample(REQUESTS, method="GET", route="/healthz", status="200") - before == 1
    assert request_lines(logs) == []


def test_outside_a_request_the_current_trace_id_is_a_new_one() -> None:
    assert AWS_FORMAT.fullmatch(observability.current_trace_id())


def test_the_gateway_serves_metrics_without_a_token_and_outside_its_openapi() -> None:
    app = create_app(GatewaySettings(auth_hs256_secret=TEST_SECRET))
    response = get(app, "/metrics")
    assert response.status_code == 200
    assert "wallet_http_request_duration_seconds" in response.text
    assert "/metrics" not in app.openapi()["paths"]
    # And the API routes answer with the trace id too (here refused: no token).
    refused = get(app, "/v1/wallets/alice/balance", {"X-Amzn-Trace-Id": "Root=1-trace"})
    assert refused.headers["X-Amzn-Trace-Id"] == "Root=1-trace"
