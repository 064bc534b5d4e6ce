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
    new_key,
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


def amounts_by_hour(answer: httpx.Response) -> list[tuple[str, Decimal]]:
    assert answer.status_code == 200, answer.text
    points: list[dict[str, Any]] = json.loads(answer.text, parse_float=Decimal)
    return [(point["datetime"], Decimal(point["amount"])) for point in points]


def test_record_then_replay_by_idempotency_key(gateway: httpx.Client) -> None:
    key = new_key("seed")
    headers = {"Idempotency-Key": key}
    content = record_json("1991-06-07T08:09:10+02:00", "1.1", amount_as_number=True)

    first = post_json(gateway, "/", content, headers)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"].startswith("application/json")
    assert "Idempotent-Replayed" not in first.headers
    assert first.headers["Idempotency-Key"] == key
    assert first.text == '{"datetime": "1991-06-07T06:09:10+00:00", "amount": 1.1}'

    again = post_json(gateway, "/", content, headers)
    assert again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.headers["Idempotency-Key"] == key
    assert again.text == first.text

    # The same key with another payload is a conflict.
    other = record_json("1991-06-07T08:09:10+02:00", "2.2", amount_as_number=True)
    conflict = post_json(gateway, "/", other, headers)
    assert_problem(conflict, 422)
    assert conflict.headers["Idempotency-Key"] == key


def test_two_deposits_in_one_trace_are_both_recorded(gateway: httpx.Client) -> None:
    """Finding 1, on the seed's route: no key is ever taken from X-Amzn-Trace-Id, whose
    Root= every call of one distributed trace shares."""
    root = trace_id()
    responses = [
        post_json(
            gateway,
            "/",
            record_json(datetime_text, amount, amount_as_number=True),
            {"X-Amzn-Trace-Id": f"{root};Parent={parent}"},
        )
        for datetime_text, amount, parent in (
            ("1994-02-03T10:15:00Z", "1.25", "53995c3f42cd8ad8"),
            ("1994-02-03T10:45:00Z", "2.5", "8ad853995c3f42cd"),
        )
    ]
    # Before the fix: 201, then 422 (one key, two payloads); with equal payloads a 200 replay.
    assert [response.status_code for response in responses] == [201, 201], responses[1].text
    wait_for_projection(gateway, now())

    hours = amounts_by_hour(
        search(
            gateway,
            {"startDatetime": "1994-02-03T10:00:00Z", "endDatetime": "1994-02-03T11:00:00Z"},
        )
    )
    assert [when for when, _ in hours] == ["1994-02-03T10:00:00+00:00", "1994-02-03T11:00:00+00:00"]
    assert hours[1][1] - hours[0][1] == Decimal("3.75")  # both counted, whatever came before


def test_refused_deposits_carry_the_key_they_were_tried_under(gateway: httpx.Client) -> None:
    """Finding 9, on the seed's route: a 400 from the body and one from the command service
    carry the key, sent or generated."""
    for content in ('{"datetime": ', record_json("1994-02-04T00:00:00Z", "-1")):
        key = new_key("seed-refused")
        sent = post_json(gateway, "/", content, {"Idempotency-Key": key})
        assert_problem(sent, 400)
        assert sent.headers["Idempotency-Key"] == key
        generated = post_json(gateway, "/", content)
        assert_problem(generated, 400)
        assert uuid.UUID(generated.headers["Idempotency-Key"]).version == 4


def test_search_starting_just_after_an_hour_leaves_that_hour_out(gateway: httpx.Client) -> None:
    """Finding 6, on the seed's route: a start a tenth of a microsecond after 00:00 is
    after 00:00, so the 00:00 point is not in the answer."""
    hours = amounts_by_hour(
        search(
            gateway,
            {
                "startDatetime": "1994-02-05T00:00:00.0000001Z",
                "endDatetime": "1994-02-05T02:00:00Z",
            },
        )
    )
    assert [when for when, _ in hours] == ["1994-02-05T01:00:00+00:00", "1994-02-05T02:00:00+00:00"]


def test_record_with_a_string_amount(gateway: httpx.Client) -> None:
    response = post_json(gateway, "/", record_json("1992-01-01T00:00:00Z", "0.30"))
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
    body = assert_problem(post_json(gateway, "/", content), 400)
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
            gateway, "/", record_json(datetime_text, amount, amount_as_number=True)
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
