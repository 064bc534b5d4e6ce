"""Metrics and trace ids over real sockets: a `wallet dev` stack's gateway /metrics and the
command, query and updater metrics ports count the requests made through the gateway, the
trace id goes through the gateway and back, and a taken metrics port stops a process with a
clear message."""

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gateway.observability import METRICS_PATH
from harness.dev_stack import DevPorts
from harness.processes import wallet_command
from services.platform.trace_ids import new_trace_id
from tests.e2e.processes import WalletProcess, child_env, occupied_port, run_refused_dev
from tests.e2e.stack import (
    DevStack,
    new_key,
    new_wallet,
    now,
    post_json,
    record_json,
    wait_for_projection,
)
from tests.metrics_support import label_values, scraped
from wallet_cli.local.dynamodb_local import DynamoDBLocal, free_port

pytest_plugins = ["tests.e2e.stack_fixtures"]

RECORDS_ROUTE = "/v1/wallets/{wallet_id}/records"
HISTORY_ROUTE = "/v1/wallets/{wallet_id}/history"
RECORD = "/wallet.v1.WalletCommand/RecordTransaction"
HISTORY = "/wallet.v1.WalletQuery/GetBalanceHistory"
AWS_FORMAT = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}")
LOG_WAIT_SECONDS = 10.0


def scrape(url: str, timeout: float = 30.0) -> str:
    """A metrics page, fetched without credentials (/metrics needs none). Waits for the port
    a little: the updater serves it once it holds its lock, which may be after the stack is
    ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=10)
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def pages(stack: DevStack) -> dict[str, str]:
    ports = stack.ports
    return {
        "gateway": scrape(f"{stack.base_url}/metrics"),
        "command": scrape(f"http://127.0.0.1:{ports.command_metrics}/metrics"),
        "query": scrape(f"http://127.0.0.1:{ports.query_metrics}/metrics"),
        "updater": scrape(f"http://127.0.0.1:{ports.updater_metrics}/metrics"),
    }


def record(client: httpx.Client, wallet_id: str, key: str, amount: str) -> httpx.Response:
    content = record_json("2019-10-05T14:48:01+01:00", amount)
    return post_json(client, f"/v1/wallets/{wallet_id}/records", content, {"Idempotency-Key": key})


def test_every_process_counts_the_requests_made_through_the_gateway(
    dev_stack: DevStack, gateway: httpx.Client
) -> None:
    wallet_id, key = new_wallet("metrics"), new_key()
    before = pages(dev_stack)

    assert record(gateway, wallet_id, key, "1.1").status_code == 201
    assert record(gateway, wallet_id, key, "1.1").status_code == 200  # a replay
    assert record(gateway, wallet_id, key, "2").status_code == 422  # a conflict
    history = gateway.get(
        f"/v1/wallets/{wallet_id}/history",
        params={"start": "2019-10-05T12:00:00Z", "end": "2019-10-05T14:00:00Z"},
    )
    assert history.status_code == 200, history.text
    written = now()
    wait_for_projection(gateway, written)
    after = pages(dev_stack)

    def change(process: str, name: str, **labels: str) -> float:
        """The series' growth; it must be on the later page (a misspelled label never is),
        but may be missing from the earlier one (not counted yet)."""
        now = scraped(after[process], name, **labels)
        assert now is not None, f"no {name}{labels} in the {process}'s metrics"
        return now - (scraped(before[process], name, **labels) or 0.0)

    http = "wallet_http_requests_total"
    for status, count in (("201", 1), ("200", 1), ("422", 1)):
        assert change("gateway", http, method="POST", route=RECORDS_ROUTE, status=status) == count
    assert change("gateway", http, method="GET", route=HISTORY_ROUTE, status="200") == 1
    assert METRICS_PATH not in label_values(after["gateway"], http, "route")
    timed = "wallet_http_request_duration_seconds_count"
    assert change("gateway", timed, method="POST", route=RECORDS_ROUTE) == 3

    outcomes = "wallet_record_outcomes_total"
    for outcome in ("recorded", "replayed", "conflicting"):
        assert change("command", outcomes, outcome=outcome) == 1, outcome
    assert change("command", "wallet_grpc_calls_total", method=RECORD, code="OK") == 2
    assert change("command", "wallet_grpc_calls_total", method=RECORD, code="ALREADY_EXISTS") == 1
    assert change("command", "wallet_grpc_call_duration_seconds_count", method=RECORD) == 3

    assert change("query", "wallet_grpc_calls_total", method=HISTORY, code="OK") == 1

    # The record's item and its aggregate's update, at least: both are stream records.
    assert change("updater", "wallet_updater_stream_records_read_total") >= 2
    assert change("updater", "wallet_updater_passes_total", outcome="completed") >= 1
    assert change("updater", "wallet_updater_passes_total", outcome="failed") == 0
    # Passes every 0.2 s: the read model is a fraction of a second behind, whatever the load.
    lag = scraped(after["updater"], "wallet_updater_lag_seconds")
    assert lag is not None
    assert 0 <= lag < 10
    # The query service reads the same as_of from the read model at each scrape.
    age = scraped(after["query"], "wallet_read_model_age_seconds")
    assert age is not None
    assert 0 <= age < 10


# What the load balancer adds to every request (X-Forwarded-For and -Proto among them), and
# the standard header another proxy may add instead.
PROXY_HEADERS = [
    {"X-Forwarded-For": "203.0.113.7"},
    {"X-Forwarded-Proto": "https"},
    {"Forwarded": "for=203.0.113.7;proto=https"},
]


# /%6Detrics is not /metrics to the load balancer's path rule, but it is to the gateway.
@pytest.mark.parametrize("path", [METRICS_PATH, "/%6Detrics"])
def test_metrics_are_not_found_by_requests_that_came_through_a_proxy(
    dev_stack: DevStack, path: str
) -> None:
    with httpx.Client(base_url=dev_stack.base_url, timeout=10) as client:
        direct = client.get(path)
        unknown = client.get("/no-such-path", headers=PROXY_HEADERS[0])
        proxied = [client.get(path, headers=headers) for headers in PROXY_HEADERS]
        after = client.get(path).text

    assert direct.status_code == 200, direct.text
    assert "wallet_http_requests_total" in direct.text
    assert unknown.status_code == 404
    for response in proxied:  # just another unknown path
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == unknown.headers["content-type"]
        assert response.json() == unknown.json()
        assert AWS_FORMAT.fullmatch(response.headers["X-Amzn-Trace-Id"])
    assert "X-Amzn-Trace-Id" not in direct.headers  # scrapes are not traced
    # Counted as unknown paths are, /metrics only ever by direct scrapes: not at all.
    not_found = {"method": "GET", "route": "unmatched", "status": "404"}
    counted = scraped(after, "wallet_http_requests_total", **not_found)
    assert counted is not None
    earlier = scraped(direct.text, "wallet_http_requests_total", **not_found) or 0.0
    assert counted - earlier == 1 + len(PROXY_HEADERS)


def log_lines(stack: DevStack, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The stack's JSON log lines that `wanted` picks, waiting a little for them: a process
    may log a request just after answering it."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        lines = [line for line in stack.process.json_log(strict=False) if wanted(line)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def record_traced(gateway: httpx.Client) -> tuple[str, str, httpx.Response]:
    """(trace id, idempotency key, response) of a new record sent with a trace id."""
    trace_id, key = new_trace_id(), new_key()
    response = post_json(
        gateway,
        f"/v1/wallets/{new_wallet('traced')}/records",
        record_json("2019-10-05T14:48:01+01:00", "1.1"),
        {"Idempotency-Key": key, "X-Amzn-Trace-Id": trace_id},
    )
    assert response.status_code == 201, response.text
    return trace_id, key, response


def test_the_trace_id_goes_through_the_gateway_and_back(
    dev_stack: DevStack, gateway: httpx.Client
) -> None:
    trace_id, _, response = record_traced(gateway)

    assert response.headers["X-Amzn-Trace-Id"] == trace_id
    [request_line] = log_lines(
        dev_stack,
        lambda line: line.get("message") == "request" and line.get("trace_id") == trace_id,
    )
    assert request_line["method"] == "POST"
    assert request_line["route"] == RECORDS_ROUTE
    assert request_line["status"] == 201
    assert request_line["latency_ms"] > 0


def test_the_gateway_passes_the_trace_id_to_the_services(
    dev_stack: DevStack, gateway: httpx.Client
) -> None:
    trace_id, key, _ = record_traced(gateway)

    [call_line] = log_lines(
        dev_stack, lambda line: line.get("message") == "call" and line.get("request_id") == key
    )
    assert call_line["method"] == RECORD
    assert call_line["trace_id"] == trace_id


def test_a_request_without_a_trace_id_gets_a_new_one(gateway: httpx.Client) -> None:
    first = gateway.get("/healthz")
    second = gateway.get("/healthz")
    assert AWS_FORMAT.fullmatch(first.headers["X-Amzn-Trace-Id"])
    assert first.headers["X-Amzn-Trace-Id"] != second.headers["X-Amzn-Trace-Id"]


def test_a_restarted_updater_reports_the_read_model_age_not_its_uptime(
    dynamodb_local: DynamoDBLocal, database_url: str, tmp_path: Path
) -> None:
    # The read model was last projected an hour ago; the table is gone, so no pass completes.
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE projection_status SET last_pass_finished_at = now() - interval '1 hour'"
        )
    metrics_port = free_port()
    updater = WalletProcess.start(
        ["update", "--follow"],
        child_env(
            **dynamodb_local.client_env(),
            DATABASE_URL=database_url,
            WALLET_TABLE_NAME=f"missing-{new_key()}",
            WALLET_LISTEN_HOST="127.0.0.1",
            WALLET_UPDATER_METRICS_PORT=str(metrics_port),
        ),
        command_port=0,
        log_dir=tmp_path,
    )
    try:
        page = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        updater.stop()
    lag = scraped(page, "wallet_updater_lag_seconds")
    assert lag is not None, updater.stderr_text()
    assert 3600 <= lag < 3600 + 60, updater.stderr_text()


def assert_refused_clearly(result: "subprocess.CompletedProcess[str]", port: int) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert str(port) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("service", ["command", "query"])
def test_a_service_whose_metrics_port_is_taken_exits_2_saying_so(
    dynamodb_local: DynamoDBLocal, database_url: str, service: str
) -> None:
    with occupied_port() as taken:
        result = subprocess.run(
            wallet_command("serve", service),
            env=child_env(
                **dynamodb_local.client_env(),
                DATABASE_URL=database_url,
                WALLET_LISTEN_HOST="127.0.0.1",
                WALLET_COMMAND_PORT=str(free_port()),
                WALLET_QUERY_PORT=str(free_port()),
                **{f"WALLET_{service.upper()}_METRICS_PORT": str(taken)},
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert_refused_clearly(result, taken)
    assert f"wallet serve {service}: cannot serve metrics" in result.stderr


def test_an_updater_whose_metrics_port_is_taken_exits_2_saying_so(
    dynamodb_local: DynamoDBLocal, table_name: str, database_url: str
) -> None:
    with occupied_port() as taken:
        result = subprocess.run(
            wallet_command("update", "--follow"),
            env=child_env(
                **dynamodb_local.client_env(),
                DATABASE_URL=database_url,
                WALLET_TABLE_NAME=table_name,
                WALLET_LISTEN_HOST="127.0.0.1",
                WALLET_UPDATER_METRICS_PORT=str(taken),
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert_refused_clearly(result, taken)
    assert "wallet update: cannot serve metrics" in result.stderr


def test_wallet_dev_names_a_taken_metrics_port(tmp_path: Path) -> None:
    dev_dir = tmp_path / "dev"
    with occupied_port() as taken:
        result, leftovers = run_refused_dev(dev_dir, DevPorts(query_metrics=taken))
    assert_refused_clearly(result, taken)
    assert "$WALLET_QUERY_METRICS_PORT" in result.stderr, result.stderr
    assert not leftovers
