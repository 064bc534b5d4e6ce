"""Statements over REST on the whole stack (`wallet dev`): records listed a page at a time
with next_cursor and a Link header, looked up by key (with a 404 that says how fresh it
is), a cursor reused with other filters refused, another wallet's records refused, and the
records and the history as CSV that a spreadsheet and Python's csv module read back
exactly, request ids with commas, quotes and slashes included."""

import csv
import io
import json
import re
import subprocess
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from harness.processes import wallet_command
from tests.auth_support import bearer_header, token_for
from tests.e2e.processes import child_env
from tests.e2e.stack import (
    HTTP_TIMEOUT,
    DevStack,
    assert_problem,
    new_wallet,
    now,
    parse_utc,
    post_json,
    record_json,
    wait_for_projection,
)

pytest_plugins = ["tests.e2e.stack_fixtures"]

DAY = {"start": "2024-06-01T00:00:00Z", "end": "2024-06-02T00:00:00Z"}
CSV_HEADER = ["wallet_id", "request_id", "datetime", "amount", "recorded_at"]
# Keys a CSV writer must quote (comma, quote) and a path must percent-encode (slash, space).
AWKWARD_KEYS = ["a,b", 'say "hi"', "x/y z", "=1+2"]


def deposit(client: httpx.Client, wallet: str, when: str, amount: str, key: str) -> None:
    response = post_json(
        client, f"/v1/wallets/{wallet}/records", record_json(when, amount), {"Idempotency-Key": key}
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def statement(dev_stack: DevStack) -> dict[str, Any]:
    """A wallet with 12 deposits on one day (four with awkward keys, two at one instant),
    projected."""
    wallet = new_wallet("statement")
    with httpx.Client(
        base_url=dev_stack.base_url, timeout=HTTP_TIMEOUT, headers=bearer_header()
    ) as client:
        written = []
        for index in range(8):
            when = f"2024-06-01T{index:02d}:30:00.000001Z"
            deposit(client, wallet, when, f"{index}.25", f"key-{index:02d}")
            written.append(f"key-{index:02d}")
        for key in AWKWARD_KEYS:
            deposit(client, wallet, "2024-06-01T23:59:59.999999+00:00", "0.000000000000000001", key)
            written.append(key)
        written_by = now()
        wait_for_projection(client, written_by)
    return {"wallet": wallet, "keys": written, "written_before": written_by}


def list_page(
    client: httpx.Client, wallet: str, headers: dict[str, str] | None = None, **params: Any
) -> httpx.Response:
    return client.get(f"/v1/wallets/{wallet}/records", params={**DAY, **params}, headers=headers)


def test_pages_follow_next_cursor_and_the_link_header_to_every_record_once(
    gateway: httpx.Client, statement: dict[str, Any]
) -> None:
    wallet = statement["wallet"]
    seen: list[str] = []
    response = list_page(gateway, wallet, limit=5)
    pages = 1
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["wallet_id"] == wallet
        assert body["as_of"] is not None
        assert response.headers["Vary"] == "Accept"  # the same URL answers CSV too
        seen += [record["request_id"] for record in body["records"]]
        if body["next_cursor"] is None:
            assert "Link" not in response.headers
            break
        link = re.fullmatch(r'<(/v1/[^>]+)>; rel="next"', response.headers["Link"])
        assert link, response.headers["Link"]
        assert f"cursor={quote(body['next_cursor'], safe='')}" in link.group(1)
        response = gateway.get(link.group(1))  # the Link as given: start, end, limit kept
        pages += 1
    assert pages == 3
    # The first eight in time order; the four at one instant in byte order of their keys.
    assert seen == statement["keys"][:8] + sorted(AWKWARD_KEYS)


def test_a_cursor_sent_with_another_range_is_refused(
    gateway: httpx.Client, statement: dict[str, Any]
) -> None:
    cursor = list_page(gateway, statement["wallet"], limit=2).json()["next_cursor"]
    response = list_page(gateway, statement["wallet"], cursor=cursor, end="2024-06-03T00:00:00Z")
    body = assert_problem(response, 400)
    assert {error["field"] for error in body["errors"]} == {"cursor"}


@pytest.mark.parametrize("params", [{"limit": "-1"}, {"limit": "many"}, {"start": "yesterday"}])
def test_bad_listing_parameters_are_problems_naming_them(
    gateway: httpx.Client, statement: dict[str, Any], params: dict[str, Any]
) -> None:
    body = assert_problem(list_page(gateway, statement["wallet"], **params), 400)
    assert {error["field"] for error in body["errors"]} == set(params)


def test_another_wallets_records_are_forbidden(
    dev_stack: DevStack, statement: dict[str, Any]
) -> None:
    with httpx.Client(
        base_url=dev_stack.base_url,
        timeout=HTTP_TIMEOUT,
        headers=bearer_header(token_for("someone")),
    ) as client:
        assert_problem(list_page(client, statement["wallet"]), 403)
        assert_problem(client.get(f"/v1/wallets/{statement['wallet']}/records/key-00"), 403)


@pytest.mark.parametrize("key", ["key-03", *AWKWARD_KEYS])
def test_a_record_is_found_by_its_percent_encoded_key(
    gateway: httpx.Client, statement: dict[str, Any], key: str
) -> None:
    response = gateway.get(f"/v1/wallets/{statement['wallet']}/records/{quote(key, safe='')}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["wallet_id"], body["request_id"]) == (statement["wallet"], key)
    assert parse_utc(body["recorded_at"]) > parse_utc(body["datetime"]) - timedelta(days=3650)


def test_a_record_not_projected_is_a_404_that_says_as_of_when(
    gateway: httpx.Client, statement: dict[str, Any]
) -> None:
    body = assert_problem(gateway.get(f"/v1/wallets/{statement['wallet']}/records/nope"), 404)
    assert parse_utc(body["as_of"]) < now()


def test_the_records_stream_as_csv_that_reads_back_exactly(
    gateway: httpx.Client, statement: dict[str, Any]
) -> None:
    wallet = statement["wallet"]
    as_json = [
        record
        for cursor in _cursors(gateway, wallet)
        for record in list_page(gateway, wallet, cursor=cursor, limit=5).json()["records"]
    ]

    response = list_page(gateway, wallet, {"Accept": "text/csv"}, limit=5)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["Vary"] == "Accept"
    # The projection holds every deposit above, so its as_of is after the last of them.
    assert statement["written_before"] < parse_utc(response.headers["Read-Model-As-Of"]) < now()
    assert response.text.count("\r\n") == len(as_json) + 1  # CRLF line ends, header included
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == CSV_HEADER
    assert [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]] == as_json
    amounts = [Decimal(row[3]) for row in rows[1:]]
    assert sum(amounts) == Decimal("30.000000000000000004")


def test_the_history_as_csv_holds_the_json_points(
    gateway: httpx.Client, statement: dict[str, Any]
) -> None:
    params = {**DAY, "tz": "Asia/Kolkata"}
    path = f"/v1/wallets/{statement['wallet']}/history"
    as_json = gateway.get(path, params=params)
    assert as_json.headers["Vary"] == "Accept"
    points = as_json.json()["points"]

    response = gateway.get(path, params=params, headers={"Accept": "text/csv;q=1, */*;q=0.5"})

    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["Vary"] == "Accept"
    assert statement["written_before"] < parse_utc(response.headers["Read-Model-As-Of"]) < now()
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows == [["datetime", "balance", "change"]] + [
        [point["datetime"], point["balance"], point["change"]] for point in points
    ]


def _cursors(client: httpx.Client, wallet: str) -> list[str]:
    cursors, cursor = [""], list_page(client, wallet, limit=5).json()["next_cursor"]
    while cursor:
        cursors.append(cursor)
        cursor = list_page(client, wallet, cursor=cursor, limit=5).json()["next_cursor"]
    return cursors


def test_a_method_the_records_path_lacks_is_refused_naming_both_it_has(
    gateway: httpx.Client,
) -> None:
    response = gateway.delete("/v1/wallets/alice/records")
    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, POST"


@pytest.mark.parametrize("output", ["--csv", "--json", "table"])
def test_wallet_records_follows_every_page_over_grpc(
    gateway: httpx.Client, dev_stack: DevStack, statement: dict[str, Any], output: str
) -> None:
    wallet = statement["wallet"]
    as_csv = list_page(gateway, wallet, {"Accept": "text/csv"}).text
    arguments = ["--wallet", wallet, "--start", DAY["start"], "--end", DAY["end"]]
    arguments += ["--page-size", "5", "--token", token_for(wallet)]
    if output != "table":
        arguments.append(output)

    printed = subprocess.run(
        wallet_command("records", *arguments),
        env=child_env(WALLET_QUERY_ADDRESS=dev_stack.ports.query_address),
        capture_output=True,
        timeout=HTTP_TIMEOUT,
        check=True,
    ).stdout.decode()  # as bytes: text mode would turn the CSV's CRLF into LF

    rows = list(csv.reader(io.StringIO(as_csv, newline="")))
    if output == "--csv":
        assert printed == as_csv
    elif output == "--json":
        lines = [json.loads(line) for line in printed.splitlines()]
        assert lines == [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    else:
        assert [line.split()[-1] for line in printed.splitlines()[1:5]] == [
            row[1] for row in rows[1:5]
        ]
        assert printed.splitlines()[-1].startswith("(read model as of 20")
