"""new_deposit validation, the idempotency fingerprint, the replay/conflict decision and the
aggregate shard."""

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.records import (
    MAX_FUTURE_SKEW,
    Conflicting,
    Deposit,
    Replayed,
    StoredRecord,
    new_deposit,
    outcome_for_existing,
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
PLUS_ONE = timezone(timedelta(hours=1))
OCCURRED = datetime(2019, 10, 5, 14, 48, 1, 250000, tzinfo=PLUS_ONE)


def deposit(
    *,
    wallet_id: str = "w1",
    request_id: str = "req-1",
    occurred_at: datetime | None = OCCURRED,
    amount: str = "1.1",
    now: datetime = NOW,
) -> Deposit:
    return new_deposit(
        wallet_id=wallet_id,
        request_id=request_id,
        occurred_at=occurred_at,
        amount=amount,
        now=now,
    )


def violated_fields(error: InvalidInput) -> list[str]:
    return sorted(v.field for v in error.violations)


def test_valid_input_gives_a_utc_deposit() -> None:
    result = deposit(amount="1.10")
    assert result == Deposit(
        "w1", "req-1", datetime(2019, 10, 5, 13, 48, 1, 250000, UTC), result.amount
    )
    assert result.amount == Decimal("1.1")
    assert result.occurred_at.utcoffset() == timedelta(0)
    assert result.bucket == datetime(2019, 10, 5, 13, 45, tzinfo=UTC)


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as raised:
        deposit(wallet_id="a/b", request_id="", occurred_at=None, amount="0")
    assert violated_fields(raised.value) == ["amount", "occurred_at", "request_id", "wallet_id"]
    assert all(v.description for v in raised.value.violations)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"wallet_id": ""}, "wallet_id"),
        ({"request_id": "x" * 256}, "request_id"),
        ({"amount": "-1"}, "amount"),
        ({"occurred_at": None}, "occurred_at"),
    ],
)
def test_one_bad_field_is_reported_alone(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        deposit(**changes)  # type: ignore[arg-type]
    assert violated_fields(raised.value) == [field]


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(InvalidInput) as raised:
        deposit(occurred_at=datetime(2019, 10, 5, 14, 48, 1))
    assert violated_fields(raised.value) == ["occurred_at"]


def test_exactly_five_minutes_ahead_is_accepted() -> None:
    assert timedelta(minutes=5) == MAX_FUTURE_SKEW
    result = deposit(occurred_at=NOW + timedelta(minutes=5))
    assert result.occurred_at == NOW + timedelta(minutes=5)


def test_five_minutes_ahead_in_another_offset_is_accepted() -> None:
    result = deposit(occurred_at=(NOW + timedelta(minutes=5)).astimezone(PLUS_ONE))
    assert result.occurred_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    "ahead",
    [timedelta(minutes=5, microseconds=1), timedelta(minutes=6), timedelta(days=365)],
)
def test_more_than_five_minutes_ahead_is_rejected(ahead: timedelta) -> None:
    with pytest.raises(InvalidInput) as raised:
        deposit(occurred_at=(NOW + ahead).astimezone(PLUS_ONE))
    assert violated_fields(raised.value) == ["occurred_at"]


@pytest.mark.parametrize(
    "occurred_at",
    [NOW, NOW - timedelta(days=3650), datetime(1970, 1, 1, tzinfo=UTC)],
)
def test_past_datetimes_are_accepted(occurred_at: datetime) -> None:
    assert deposit(occurred_at=occurred_at).occurred_at == occurred_at


def test_fingerprint_ignores_amount_spelling() -> None:
    assert deposit(amount="1.1").fingerprint == deposit(amount="1.10").fingerprint
    assert deposit(amount="2000").fingerprint == deposit(amount="2e3").fingerprint


def test_fingerprint_ignores_the_offset_of_the_same_instant() -> None:
    in_utc = OCCURRED.astimezone(UTC)
    in_kathmandu = OCCURRED.astimezone(timezone(timedelta(hours=5, minutes=45)))
    assert deposit(occurred_at=in_utc).fingerprint == deposit(occurred_at=OCCURRED).fingerprint
    assert deposit(occurred_at=in_kathmandu).fingerprint == deposit().fingerprint


def test_fingerprint_ignores_the_request_id_and_the_wallet() -> None:
    """It fingerprints the payload; (wallet, request id) is the key it is stored under.
    Before request ids were scoped per wallet, the wallet was part of it."""
    assert deposit(request_id="a").fingerprint == deposit(request_id="b").fingerprint
    assert deposit(wallet_id="w1").fingerprint == deposit(wallet_id="w2").fingerprint


def test_fingerprint_is_sha256_of_the_canonical_payload_text() -> None:
    """Pinned: stored fingerprints decide replays for ever, so the text they hash may never
    change (a change would turn every later replay of an older record into a conflict)."""
    text = "2019-10-05T13:48:01.250000Z\n1.1"
    assert deposit(amount="1.10").fingerprint == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": "1.11"},
        {"amount": "11"},
        {"occurred_at": OCCURRED + timedelta(microseconds=1)},
        {"occurred_at": OCCURRED + timedelta(hours=1)},
    ],
)
def test_fingerprint_differs_for_another_payload(changes: dict[str, object]) -> None:
    assert deposit(**changes).fingerprint != deposit().fingerprint  # type: ignore[arg-type]


STORED = StoredRecord(deposit(), recorded_at=NOW)


def test_the_stored_fingerprint_equal_to_the_deposits_is_a_replay_of_the_stored_record() -> None:
    again = deposit(amount="1.10", occurred_at=OCCURRED.astimezone(UTC))
    assert outcome_for_existing(again, STORED, again.fingerprint) == Replayed(STORED)


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": "1.11"},
        {"occurred_at": OCCURRED + timedelta(microseconds=1)},
    ],
)
def test_another_payload_is_a_conflict_with_the_stored_record(changes: dict[str, object]) -> None:
    other = deposit(**changes)  # type: ignore[arg-type]
    assert outcome_for_existing(other, STORED, STORED.deposit.fingerprint) == Conflicting(STORED)


def test_the_stored_fingerprint_decides_not_one_recomputed_from_the_stored_payload() -> None:
    """Before the fix, the fingerprint was written with each record but never read. Whatever
    the stored payload hashes to today, the fingerprint stored with it is the one compared."""
    same_payload = deposit()
    assert outcome_for_existing(same_payload, STORED, "0" * 64) == Conflicting(STORED)
    other_payload = deposit(amount="2")
    stored_as = other_payload.fingerprint
    assert outcome_for_existing(other_payload, STORED, stored_as) == Replayed(STORED)


@pytest.mark.parametrize(
    "changes", [{"wallet_id": "w2"}, {"request_id": "req-2"}], ids=["wallet", "request id"]
)
def test_another_keys_record_is_never_an_answer(changes: dict[str, object]) -> None:
    """A record of another (wallet, request id) reaching the decision is a bug in the key,
    not a replay or a conflict to tell the caller about."""
    other = deposit(**changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another"):
        outcome_for_existing(other, STORED, other.fingerprint)


def test_shard_depends_only_on_the_request_id() -> None:
    base = deposit(request_id="req-42")
    other_payload = deposit(request_id="req-42", wallet_id="w9", amount="7", occurred_at=NOW)
    assert base.shard(8) == other_payload.shard(8)
    assert base.shard(8) == deposit(request_id="req-42").shard(8)


@settings(deadline=None)
@given(st.text(min_size=1, max_size=255), st.integers(min_value=1, max_value=1000))
def test_shard_is_in_range(request_id: str, shard_count: int) -> None:
    shard = Deposit("w", request_id, NOW, Decimal(1)).shard(shard_count)
    assert 0 <= shard < shard_count


def test_shards_spread_request_ids() -> None:
    counts = Counter(Deposit("w", f"req-{i}", NOW, Decimal(1)).shard(8) for i in range(4000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 350  # 500 expected each


def test_one_shard_means_shard_zero() -> None:
    assert {Deposit("w", f"r{i}", NOW, Decimal(1)).shard(1) for i in range(50)} == {0}
