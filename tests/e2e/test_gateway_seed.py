"""The seed's API on the gateway (POST /, POST /search, GET /health-check), with the seed's
own test cases, over real sockets on the whole stack.

Every test shares the wallet `default`, so each one writes at its own dates; and since a
balance counts every earlier record, the test that checks absolute balances writes the
earliest records of all.
"""

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.stack import (
    assert_problem,
    now,
    post_json,
    problem_fields,
    record_json,
    wait_for_projection,
)

pytest_plugins = ["tests.e2e.stack_fixtures"]


def trace_id() -> str:
    return f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"


def search(client: httpx.Client, body: dict[str, str]) -> httpx.Response:
    return post_json(client, "/search", json.dumps(body))


def test_record_then_replay_by_trace_id(gateway: httpx.Client) -> None:
    headers = {"X-Amzn-Trace-Id": trace_id()}
    content = record_json("1991-06-07T08:09:10+02:00", "1.1", amount_as_number=True)

    first = post_json(gateway, "/", content, headers)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"].startswith("application/json")
    assert "Idempotent-Replayed" not in first.headers
    assert first.text == '{"datetime": "1991-06-07T06:09:10+00:00", "amount": 1.1}'

    again = post_json(gateway, "/", content, headers)
    assert again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.text == first.text

    # The same trace id with another payload is a conflict.
    other = record_json("1991-06-07T08:09:10+02:00", "2.2", amount_as_number=True)
    assert_problem(post_json(gateway, "/", other, headers), 422)


def test_record_with_a_string_amount(gateway: httpx.Client) -> None:
    response = post_json(
        gateway, "/", record_json("1992-01-01T00:00:00Z", "0.30"), {"X-Amzn-Trace-Id": trace_id()}
    )
    assert response.status_code == 201, response.text
    assert response.text == '{"datetime": "1992-01-01T00:00:00+00:00", "amount": 0.3}'


@pytest.mark.parametrize(
    "content",
    [
        '{"date": "1993-01-01T00:00:00Z", "value": 1}',
        '{"datetime": "1993-01-01T00:00:00Z", "amount": 1, "extra": true}',
        '{"datetime": "1993-01-01T00:00:00Z"}',
        '{"amount": 1}',
        "{}",
    ],
)
def test_body_with_wrong_fields_is_400(gateway: httpx.Client, content: str) -> None:
    body = assert_problem(post_json(gateway, "/", content, {"X-Amzn-Trace-Id": trace_id()}), 400)
    expected = set(json.loads(content)) - {"datetime", "amount"}
    if expected:
        assert problem_fields(body) == expected, body
    else:
        assert problem_fields(body) & {"datetime", "amount"}, body


def test_datetime_without_offset_is_400(gateway: httpx.Client) -> None:
    response = post_json(gateway, "/", '{"datetime": "2024-01-01T10:00", "amount": 1.1}')
    assert "datetime" in problem_fields(assert_problem(response, 400))


def test_search_answers_hourly_balances_as_exact_json_numbers(gateway: httpx.Client) -> None:
    # The earliest records in `default`: nothing else counts into these balances.
    for datetime_text, amount in (
        ("1990-01-02T10:30:00Z", "1.1"),
        ("1990-01-02T11:59:59.999999Z", "0.000000000000000001"),
    ):
        response = post_json(
            gateway,
            "/",
            record_json(datetime_text, amount, amount_as_number=True),
            {"X-Amzn-Trace-Id": trace_id()},
        )
        assert response.status_code == 201, response.text
    wait_for_projection(gateway, now())

    answer = search(
        gateway,
        {"startDatetime": "1990-01-02T10:00:00+00:00", "endDatetime": "1990-01-02T12:00:00Z"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert '"amount": 1.1}' in answer.text, answer.text
    assert '"amount": 1.100000000000000001}' in answer.text, answer.text
    assert "e-" not in answer.text.lower(), answer.text

    parsed: list[dict[str, Any]] = json.loads(answer.text, parse_float=Decimal)
    assert [set(point) for point in parsed] == [{"datetime", "amount"}] * 3
    assert [(p["datetime"], p["amount"]) for p in parsed] == [
        ("1990-01-02T10:00:00+00:00", 0),
        ("1990-01-02T11:00:00+00:00", Decimal("1.1")),
        ("1990-01-02T12:00:00+00:00", Decimal("1.100000000000000001")),
    ]
    assert all(not isinstance(p["amount"], float) for p in parsed)

    # The other spelling of the range fields gives the same answer.
    other = search(
        gateway,
        {"startDateTime": "1990-01-02T10:00:00+00:00", "endDateTime": "1990-01-02T12:00:00Z"},
    )
    assert other.status_code == 200, other.text
    assert other.text == answer.text


@pytest.mark.parametrize(
    "body",
    [
        {"startDatetime": "2004-10-19 13:00:00", "endDatetime": "2004-10-19T14:00:00Z"},
        {"startDatetime": "2004-10-19T13:00:00Z", "endDatetime": "2004-10-19 14:00:00"},
        {"startDatetime": "", "endDatetime": ""},
        {"startDateTime": "", "endDateTime": ""},
        {"startDatetime": "2004-10-19T15:00:00Z", "endDatetime": "2004-10-19T14:00:00Z"},
        {"startDatetime": "2004-10-19T13:00:00Z"},
        {"startDatetime": "2004-10-19T13:00:00Z", "endDatetime": "2004-10-19T14:00:00Z", "x": ""},
        {},
    ],
)
def test_bad_searches_are_400(gateway: httpx.Client, body: dict[str, str]) -> None:
    assert_problem(search(gateway, body), 400)


def test_search_refuses_non_json(gateway: httpx.Client) -> None:
    response = gateway.post(
        "/search",
        content='{"startDatetime": "2004-10-19T13:00:00Z", "endDatetime": "2004-10-19T14:00:00Z"}',
        headers={"Content-Type": "text/plain"},
    )
    assert_problem(response, 415)
    assert_problem(post_json(gateway, "/search", "not json"), 400)


def test_health_check(gateway: httpx.Client) -> None:
    response = gateway.get("/health-check")
    assert response.status_code == 200
    assert response.text == "OK\n"
    assert response.headers["content-type"].startswith("text/plain")


def test_liveness_and_readiness(gateway: httpx.Client) -> None:
    assert gateway.get("/healthz").json() == {"status": "ok"}
    ready = gateway.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "backends": {"command": True, "query": True}}
