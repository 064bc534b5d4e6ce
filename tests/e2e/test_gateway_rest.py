"""The REST gateway's /v1 API over real sockets, on the whole stack (`wallet dev`): the
design's history example, idempotent replays and conflicts, exact decimals, and errors as
application/problem+json."""

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal, localcontext
from typing import Any

import httpx
import pytest

from tests.e2e.stack import (
    assert_problem,
    new_key,
    new_wallet,
    now,
    parse_utc,
    post_json,
    problem_fields,
    record_json,
    wait_for_projection,
)

pytest_plugins = ["tests.e2e.stack_fixtures"]

EXAMPLE_DATETIME = "2019-10-05T14:48:01+01:00"
EXAMPLE_RANGE = {"start": "2019-10-05T12:00:00Z", "end": "2019-10-05T14:00:00Z"}
MAX_BODY_BYTES = 16 * 1024


def records_path(wallet_id: str) -> str:
    return f"/v1/wallets/{wallet_id}/records"


def record(
    client: httpx.Client,
    wallet_id: str,
    datetime_text: str,
    amount: str,
    *,
    key: str | None = None,
    amount_as_number: bool = False,
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    content = record_json(datetime_text, amount, amount_as_number=amount_as_number)
    return post_json(client, records_path(wallet_id), content, headers)


def balance(client: httpx.Client, wallet_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/wallets/{wallet_id}/balance")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def history(client: httpx.Client, wallet_id: str, **params: str) -> dict[str, Any]:
    response = client.get(f"/v1/wallets/{wallet_id}/history", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def points(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p["datetime"], p["balance"], p["change"]) for p in body["points"]]


def test_design_history_example(gateway: httpx.Client) -> None:
    wallet = new_wallet("example")
    key = new_key("example")
    before = now()
    response = record(gateway, wallet, EXAMPLE_DATETIME, "1.1", key=key)
    written = now()

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Idempotent-Replayed" not in response.headers
    body = response.json()
    assert set(body) == {"wallet_id", "request_id", "datetime", "amount", "recorded_at"}
    assert body["wallet_id"] == wallet
    assert body["request_id"] == key
    assert body["datetime"] == "2019-10-05T13:48:01Z"
    assert body["amount"] == "1.1"
    # Same machine, same clock: the ledger stored it while the request was in flight.
    assert before - timedelta(seconds=1) <= parse_utc(body["recorded_at"]) <= written

    wait_for_projection(gateway, written)

    utc = history(gateway, wallet, **EXAMPLE_RANGE)
    assert utc["wallet_id"] == wallet
    assert utc["time_zone"] == "UTC"
    assert parse_utc(utc["as_of"]) > written
    assert points(utc) == [
        ("2019-10-05T12:00:00+00:00", "0", "0"),
        ("2019-10-05T13:00:00+00:00", "0", "0"),
        ("2019-10-05T14:00:00+00:00", "1.1", "1.1"),
    ]

    paris = history(gateway, wallet, **EXAMPLE_RANGE, tz="Europe/Paris")
    assert paris["time_zone"] == "Europe/Paris"
    assert points(paris) == [
        ("2019-10-05T14:00:00+02:00", "0", "0"),
        ("2019-10-05T15:00:00+02:00", "0", "0"),
        ("2019-10-05T16:00:00+02:00", "1.1", "1.1"),
    ]

    # A :45 zone: its hours start at a quarter past the UTC hour.
    kathmandu = history(
        gateway,
        wallet,
        start="2019-10-05T12:00:00Z",
        end="2019-10-05T15:00:00Z",
        tz="Asia/Kathmandu",
    )
    assert points(kathmandu) == [
        ("2019-10-05T18:00:00+05:45", "0", "0"),
        ("2019-10-05T19:00:00+05:45", "0", "0"),
        ("2019-10-05T20:00:00+05:45", "1.1", "1.1"),
    ]

    current = balance(gateway, wallet)
    assert current["wallet_id"] == wallet
    assert current["balance"] == "1.1"
    assert parse_utc(current["as_of"]) > written
    at = parse_utc(current["at"])
    assert (at.minute % 15, at.second, at.microsecond) == (0, 0, 0), current
    assert at >= written, current


def test_history_starting_just_after_an_hour_leaves_that_hour_out(gateway: httpx.Client) -> None:
    """Finding 6: a start a tenth of a microsecond after 00:00 is after 00:00; cutting the
    digits beyond microseconds made it 00:00 and let that point in. An end's extra digits
    are cut: the end is inclusive, so that never lets a later point in."""
    wallet = new_wallet("sub-micro")
    late_start = history(
        gateway, wallet, start="2019-10-05T00:00:00.0000001Z", end="2019-10-05T02:00:00Z"
    )
    assert [point[0] for point in points(late_start)] == [
        "2019-10-05T01:00:00+00:00",
        "2019-10-05T02:00:00+00:00",
    ]
    late_end = history(
        gateway, wallet, start="2019-10-05T00:00:00.0000000Z", end="2019-10-05T01:00:00.0000009Z"
    )
    assert [point[0] for point in points(late_end)] == [
        "2019-10-05T00:00:00+00:00",
        "2019-10-05T01:00:00+00:00",
    ]


# --- idempotency ------------------------------------------------------------------------


def test_same_key_same_payload_is_a_replay_with_the_original_body(gateway: httpx.Client) -> None:
    wallet = new_wallet("replay")
    key = new_key("replay")
    first = record(gateway, wallet, "2020-02-03T04:05:06+02:00", "7.25", key=key)
    assert first.status_code == 201, first.text
    assert first.headers["Idempotency-Key"] == key

    # The same payload, written differently (a JSON number, another offset, trailing zero).
    for again in (
        record(gateway, wallet, "2020-02-03T04:05:06+02:00", "7.25", key=key),
        record(gateway, wallet, "2020-02-03T02:05:06Z", "7.250", key=key, amount_as_number=True),
    ):
        assert again.status_code == 200, again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.headers["Idempotency-Key"] == key
        assert again.json() == first.json()

    written = now()
    wait_for_projection(gateway, written)
    assert Decimal(balance(gateway, wallet)["balance"]) == Decimal("7.25")


@pytest.mark.parametrize(
    ("datetime_text", "amount"),
    [
        ("2020-02-03T04:05:06+02:00", "7.26"),
        ("2020-02-03T04:05:07+02:00", "7.25"),
    ],
    ids=["other-amount", "other-datetime"],
)
def test_same_key_other_payload_is_422(
    gateway: httpx.Client, datetime_text: str, amount: str
) -> None:
    wallet = new_wallet("conflict")
    key = new_key("conflict")
    first = record(gateway, wallet, "2020-02-03T04:05:06+02:00", "7.25", key=key)
    assert first.status_code == 201, first.text

    conflict = record(gateway, wallet, datetime_text, amount, key=key)
    body = assert_problem(conflict, 422)
    assert "Idempotent-Replayed" not in conflict.headers
    assert conflict.headers["Idempotency-Key"] == key
    assert "detail" in body

    # The original is untouched: the same request still replays it.
    again = record(gateway, wallet, "2020-02-03T04:05:06+02:00", "7.25", key=key)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()


def test_without_a_key_each_deposit_gets_its_own_and_is_told_it(gateway: httpx.Client) -> None:
    wallet = new_wallet("no-key")
    responses = [record(gateway, wallet, "2020-03-04T05:06:07Z", "2.5") for _ in range(2)]
    for response in responses:
        assert response.status_code == 201, response.text
        assert response.json()["request_id"]
        assert response.headers["Idempotency-Key"] == response.json()["request_id"]
    ids = {response.json()["request_id"] for response in responses}
    assert len(ids) == 2, ids

    written = now()
    wait_for_projection(gateway, written)
    assert Decimal(balance(gateway, wallet)["balance"]) == Decimal(5)


def test_two_deposits_in_one_trace_are_both_recorded(gateway: httpx.Client) -> None:
    """Finding 1: every call of one distributed trace shares its Root=, so a key taken from
    the trace id recorded the second deposit as a replay of the first (200, counted once)."""
    wallet = new_wallet("one-trace")
    root = f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"
    responses = [
        post_json(
            gateway,
            records_path(wallet),
            record_json(datetime_text, amount),
            {"X-Amzn-Trace-Id": f"{root};Parent={parent};Sampled=1"},
        )
        for datetime_text, amount, parent in (
            ("2020-03-05T10:15:00Z", "1.25", "53995c3f42cd8ad8"),
            ("2020-03-05T10:45:00Z", "2.5", "8ad853995c3f42cd"),
        )
    ]
    # Before the fix: 201, then 422 (one key, two payloads); with equal payloads a 200 replay.
    assert [response.status_code for response in responses] == [201, 201], responses[1].text
    keys = {response.json()["request_id"] for response in responses}
    assert len(keys) == 2, keys
    assert not any(root.removeprefix("Root=") in key for key in keys), keys

    wait_for_projection(gateway, now())
    assert Decimal(balance(gateway, wallet)["balance"]) == Decimal("3.75")
    hours = history(gateway, wallet, start="2020-03-05T10:00:00Z", end="2020-03-05T11:00:00Z")
    assert points(hours) == [
        ("2020-03-05T10:00:00+00:00", "0", "0"),
        ("2020-03-05T11:00:00+00:00", "3.75", "3.75"),
    ]


def test_the_idempotency_key_is_used_as_sent_whatever_the_trace_id(
    gateway: httpx.Client,
) -> None:
    wallet = new_wallet("key-wins")
    key, trace = new_key("key"), new_key("Root=1")
    response = post_json(
        gateway,
        records_path(wallet),
        record_json("2020-03-04T05:06:07Z", "1"),
        {"Idempotency-Key": key, "X-Amzn-Trace-Id": trace},
    )
    assert response.status_code == 201, response.text
    assert response.json()["request_id"] == key
    assert response.headers["Idempotency-Key"] == key


@pytest.mark.parametrize("sent_key", [True, False], ids=["sent", "generated"])
def test_refused_deposits_carry_the_key_they_were_tried_under(
    gateway: httpx.Client, sent_key: bool
) -> None:
    """Finding 9: a 400 from the body and one from the command service, both with the key
    (the client's, or the one the gateway generated)."""
    wallet = new_wallet("refused")
    for content in ('{"datetime": ', record_json("2020-03-06T00:00:00Z", "0")):
        key = new_key("refused") if sent_key else None
        headers = {"Idempotency-Key": key} if key else {}
        response = post_json(gateway, records_path(wallet), content, headers)
        assert_problem(response, 400)
        if key:
            assert response.headers["Idempotency-Key"] == key
        else:
            assert uuid.UUID(response.headers["Idempotency-Key"]).version == 4


# --- exact decimals ---------------------------------------------------------------------


def test_ten_times_point_one_is_exactly_one(gateway: httpx.Client) -> None:
    wallet = new_wallet("dimes")
    for number in range(10):
        response = record(
            gateway,
            wallet,
            f"2021-01-01T00:{number:02d}:00Z",
            "0.1",
            key=new_key("dime"),
            amount_as_number=True,
        )
        assert response.status_code == 201, response.text
        assert response.json()["amount"] == "0.1"
    written = now()
    wait_for_projection(gateway, written)

    assert Decimal(balance(gateway, wallet)["balance"]) == Decimal(1)
    day = history(gateway, wallet, start="2021-01-01T00:00:00Z", end="2021-01-01T01:00:00Z")
    assert [Decimal(p["balance"]) for p in day["points"]] == [Decimal(0), Decimal(1)]
    assert Decimal(day["points"][1]["change"]) == Decimal(1)


@pytest.mark.parametrize(
    ("raw_amount", "stored"),
    [
        ("1.10", "1.1"),
        ('"1.10"', "1.1"),
        ("123456789012345678.123456789012345678", "123456789012345678.123456789012345678"),
        ('"123456789012345678.123456789012345678"', "123456789012345678.123456789012345678"),
        ("99999999999999999999.999999999999999999", "99999999999999999999.999999999999999999"),
        ("0.000000000000000001", "0.000000000000000001"),
        ("2e3", "2000"),
        ("1.5E-3", "0.0015"),
        ("7", "7"),
    ],
)
def test_amounts_are_read_exactly(gateway: httpx.Client, raw_amount: str, stored: str) -> None:
    wallet = new_wallet("exact")
    response = record(
        gateway, wallet, "2021-02-01T00:00:00Z", raw_amount, key=new_key(), amount_as_number=True
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == stored


def test_big_amounts_sum_exactly_in_the_read_model(gateway: httpx.Client) -> None:
    wallet = new_wallet("big")
    amounts = ["123456789012345678.123456789012345678", "0.000000000000000001", "1.1"]
    for amount in amounts:
        response = record(
            gateway, wallet, "2021-03-01T10:00:00Z", amount, key=new_key(), amount_as_number=True
        )
        assert response.status_code == 201, response.text
    written = now()
    wait_for_projection(gateway, written)
    with localcontext(prec=60):  # the default context would round this test's own sum
        expected = sum((Decimal(a) for a in amounts), Decimal(0))
    assert expected == Decimal("123456789012345679.223456789012345679")
    assert balance(gateway, wallet)["balance"] == str(expected)


@pytest.mark.parametrize(
    "raw_amount",
    [
        "1e400",
        "-1e400",
        "1e-400",
        "0",
        "0.0",
        "-1",
        '"-1"',
        '"0"',
        '"abc"',
        '""',
        '"NaN"',
        '"nan"',
        '"Infinity"',
        '"-Infinity"',
        '"inf"',
        '"1_000"',
        '" 1"',
        '"0x10"',
        "NaN",
        "Infinity",
        "-Infinity",
        "true",
        "false",
        "null",
        "[1]",
        '{"value": 1}',
        "0.0000000000000000001",
        "100000000000000000000",
        "1" + "0" * 5000,
        "1e-99999999999999999999999",  # beyond Decimal's exponents
    ],
)
def test_bad_amounts_are_400_naming_amount(gateway: httpx.Client, raw_amount: str) -> None:
    response = record(
        gateway,
        new_wallet("bad-amount"),
        "2021-04-01T00:00:00Z",
        raw_amount,
        key=new_key(),
        amount_as_number=True,
    )
    body = assert_problem(response, 400)
    if len(raw_amount) < 100:  # the 5,000-digit one fails as JSON, before any field
        assert "amount" in problem_fields(body), body


def test_missing_amount_is_400_naming_amount(gateway: httpx.Client) -> None:
    response = post_json(
        gateway, records_path(new_wallet("no-amount")), '{"datetime": "2021-04-01T00:00:00Z"}'
    )
    assert "amount" in problem_fields(assert_problem(response, 400))


# --- errors -----------------------------------------------------------------------------


@pytest.fixture
def wallet() -> str:
    return new_wallet("errors")


def test_malformed_json_is_400(gateway: httpx.Client, wallet: str) -> None:
    for content in ('{"datetime": ', "", "{'datetime': 1}", b"\xff\xfe{}", "[]", '"text"', "1"):
        assert_problem(post_json(gateway, records_path(wallet), content), 400)


def test_non_json_content_type_is_415(gateway: httpx.Client, wallet: str) -> None:
    content = record_json("2021-05-01T00:00:00Z", "1")
    for headers in (
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {},
    ):
        response = gateway.post(records_path(wallet), content=content, headers=headers)
        assert_problem(response, 415)
    # The media type's parameters do not matter.
    response = gateway.post(
        records_path(wallet),
        content=content,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


def _oversized_body() -> str:
    padding = " " * (MAX_BODY_BYTES + 1)
    return f'{{"datetime": "2021-05-01T00:00:00Z",{padding}"amount": "1"}}'


def test_body_over_16_kib_is_413(gateway: httpx.Client, wallet: str) -> None:
    assert_problem(post_json(gateway, records_path(wallet), _oversized_body()), 413)


def test_chunked_body_over_16_kib_is_413(gateway: httpx.Client, wallet: str) -> None:
    """Without Content-Length the gateway must still stop reading at 16 KiB."""
    data = _oversized_body().encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 1024):
            yield data[start : start + 1024]

    response = gateway.post(
        records_path(wallet), content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


def test_body_of_exactly_16_kib_is_read(gateway: httpx.Client, wallet: str) -> None:
    base = record_json("2021-05-01T00:00:00Z", "1")
    content = base[:-1] + " " * (MAX_BODY_BYTES - len(base)) + "}"
    assert len(content.encode()) == MAX_BODY_BYTES
    response = post_json(gateway, records_path(wallet), content)
    assert response.status_code == 201, response.text


def test_unknown_fields_are_400_listing_them(gateway: httpx.Client, wallet: str) -> None:
    response = post_json(
        gateway,
        records_path(wallet),
        '{"datetime": "2021-05-01T00:00:00Z", "amount": "1", "currency": "EUR", "memo": "x"}',
    )
    body = assert_problem(response, 400)
    assert problem_fields(body) == {"currency", "memo"}
    assert "currency" in body["detail"]
    assert "memo" in body["detail"]


@pytest.mark.parametrize(
    ("datetime_text", "field"),
    [
        ("2024-01-01T10:00", "datetime"),
        ("2024-01-01T10:00:00", "datetime"),
        ("2024-01-01", "datetime"),
        ("2024-13-01T10:00:00Z", "datetime"),
        ("yesterday", "datetime"),
        ("", "datetime"),
    ],
)
def test_bad_datetimes_are_400_naming_datetime(
    gateway: httpx.Client, wallet: str, datetime_text: str, field: str
) -> None:
    response = post_json(gateway, records_path(wallet), record_json(datetime_text, "1"))
    assert field in problem_fields(assert_problem(response, 400))


def test_datetime_too_far_in_the_future_is_400(gateway: httpx.Client, wallet: str) -> None:
    future = (now() + timedelta(hours=1)).isoformat()
    response = post_json(gateway, records_path(wallet), record_json(future, "1"))
    assert "datetime" in problem_fields(assert_problem(response, 400))


def test_missing_or_non_string_datetime_is_400(gateway: httpx.Client, wallet: str) -> None:
    for content in ('{"amount": "1"}', '{"datetime": 1570283281, "amount": "1"}'):
        response = post_json(gateway, records_path(wallet), content)
        assert "datetime" in problem_fields(assert_problem(response, 400))


@pytest.mark.parametrize("wallet_id", ["bad.wallet", "x" * 65, "caf%C3%A9", "a%20b"])
def test_bad_wallet_ids_are_400(gateway: httpx.Client, wallet_id: str) -> None:
    response = post_json(gateway, records_path(wallet_id), record_json("2021-05-01T00:00:00Z", "1"))
    assert "wallet_id" in problem_fields(assert_problem(response, 400))
    response = gateway.get(f"/v1/wallets/{wallet_id}/balance")
    assert "wallet_id" in problem_fields(assert_problem(response, 400))


@pytest.mark.parametrize("key", ["k" * 256, ""])
def test_bad_idempotency_keys_are_400(gateway: httpx.Client, wallet: str, key: str) -> None:
    response = post_json(
        gateway,
        records_path(wallet),
        record_json("2021-05-01T00:00:00Z", "1"),
        {"Idempotency-Key": key},
    )
    assert "Idempotency-Key" in problem_fields(assert_problem(response, 400))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2019-10-05T12:00:00Z", "end": "2019-10-05T14:00:00Z", "tz": "Mars/Base"}, "tz"),
        ({"start": "2019-10-05T12:00:00", "end": "2019-10-05T14:00:00Z"}, "start"),
        ({"start": "2019-10-05T12:00:00Z", "end": "later"}, "end"),
        ({"start": "2019-10-05T15:00:00Z", "end": "2019-10-05T14:00:00Z"}, "start"),
        ({"start": "2019-10-05T12:00:00Z"}, "end"),
        ({"end": "2019-10-05T12:00:00Z"}, "start"),
        ({"start": "2000-01-01T00:00:00Z", "end": "2019-01-01T00:00:00Z"}, "end"),
    ],
)
def test_bad_history_queries_are_400(
    gateway: httpx.Client, wallet: str, params: dict[str, str], field: str
) -> None:
    response = gateway.get(f"/v1/wallets/{wallet}/history", params=params)
    assert field in problem_fields(assert_problem(response, 400))


def test_unknown_routes_and_methods_are_problems(gateway: httpx.Client, wallet: str) -> None:
    assert_problem(gateway.get("/v2/nothing-here"), 404)
    assert_problem(gateway.delete(records_path(wallet)), 405)
    assert_problem(gateway.delete(f"/v1/wallets/{wallet}/balance"), 405)
