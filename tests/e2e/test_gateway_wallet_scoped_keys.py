"""Idempotency keys are scoped per wallet, over HTTP on the whole stack (`wallet dev`): the
same Idempotency-Key in two wallets is two deposits, each replaying and conflicting on its
own, and each counted in its own wallet's balance."""

from decimal import Decimal

import httpx
import pytest

from tests.e2e.stack import (
    assert_problem,
    new_key,
    new_wallet,
    now,
    post_json,
    record_json,
    wait_for_projection,
)

pytest_plugins = ["tests.e2e.stack_fixtures"]

DATETIME = "2021-06-07T08:09:10+02:00"


def record(client: httpx.Client, wallet_id: str, amount: str, key: str) -> httpx.Response:
    return post_json(
        client,
        f"/v1/wallets/{wallet_id}/records",
        record_json(DATETIME, amount),
        {"Idempotency-Key": key},
    )


def balance(client: httpx.Client, wallet_id: str) -> Decimal:
    response = client.get(f"/v1/wallets/{wallet_id}/balance")
    assert response.status_code == 200, response.text
    return Decimal(response.json()["balance"])


@pytest.mark.parametrize("alice_amount", ["5", "7.25"], ids=["same payload", "other payload"])
def test_the_same_key_in_another_wallet_is_another_deposit(
    gateway: httpx.Client, alice_amount: str
) -> None:
    """Before the fix, mallory's key made alice's deposit with it a 422, telling alice
    that the key existed."""
    mallory, alice = new_wallet("mallory"), new_wallet("alice")
    key = new_key("invoice-2026-0001")

    first = record(gateway, mallory, "5", key)
    second = record(gateway, alice, alice_amount, key)

    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert "Idempotent-Replayed" not in second.headers
    assert second.headers["Idempotency-Key"] == key
    assert (second.json()["request_id"], second.json()["amount"]) == (key, alice_amount)

    # Each wallet's key replays its own deposit and conflicts on its own.
    again = record(gateway, alice, alice_amount, key)
    assert again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == second.json()
    assert_problem(record(gateway, mallory, "6", key), 422)
    assert record(gateway, alice, alice_amount, key).status_code == 200

    wait_for_projection(gateway, now())
    assert balance(gateway, mallory) == Decimal(5)
    assert balance(gateway, alice) == Decimal(alice_amount)
