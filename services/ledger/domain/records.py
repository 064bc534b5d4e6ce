"""Deposits, their idempotency fingerprint, and the outcomes of recording one."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from services.ledger.domain.buckets import bucket_start, format_instant
from services.ledger.domain.errors import FieldViolation, InvalidInput
from services.ledger.domain.ids import parse_request_id, parse_wallet_id
from services.ledger.domain.money import format_amount, parse_amount

MAX_FUTURE_SKEW = timedelta(minutes=5)

T = TypeVar("T")


@dataclass(frozen=True)
class Deposit:
    """A validated deposit. `occurred_at` is UTC with microsecond precision."""

    wallet_id: str
    request_id: str
    occurred_at: datetime
    amount: Decimal

    @property
    def bucket(self) -> datetime:
        return bucket_start(self.occurred_at)

    @property
    def fingerprint(self) -> str:
        """Hash of the payload (occurred_at, amount) in canonical text: equal for any
        spelling of the same instant and amount, different for any other. The wallet and
        the request id are not in it: request ids are scoped per wallet, so the two make up
        the key the fingerprint is stored under."""
        payload = "\n".join((format_instant(self.occurred_at), format_amount(self.amount)))
        return hashlib.sha256(payload.encode()).hexdigest()

    def shard(self, shard_count: int) -> int:
        """Which of the bucket's aggregate shards this deposit adds to: stable per request id."""
        digest = hashlib.sha256(self.request_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % shard_count


def new_deposit(
    *, wallet_id: str, request_id: str, occurred_at: datetime | None, amount: str, now: datetime
) -> Deposit:
    """Validates raw input into a Deposit, or raises InvalidInput naming every bad field."""
    violations: list[FieldViolation] = []
    wallet = _collect(lambda: parse_wallet_id(wallet_id), violations)
    request = _collect(lambda: parse_request_id(request_id), violations)
    value = _collect(lambda: parse_amount(amount), violations)
    instant = _collect(lambda: _parse_occurred_at(occurred_at, now), violations)
    if wallet is None or request is None or value is None or instant is None:
        raise InvalidInput(violations)
    return Deposit(wallet, request, instant, value)


def _collect(parse: Callable[[], T], violations: list[FieldViolation]) -> T | None:
    """Runs one field's parser, keeping its violations so all bad fields are reported."""
    try:
        return parse()
    except InvalidInput as error:
        violations.extend(error.violations)
        return None


def _parse_occurred_at(occurred_at: datetime | None, now: datetime) -> datetime:
    if occurred_at is None:
        raise InvalidInput.single("occurred_at", "is required")
    if occurred_at.tzinfo is None:
        raise InvalidInput.single("occurred_at", "must carry a UTC offset")
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise InvalidInput.single("occurred_at", "must not be more than 5 minutes in the future")
    return occurred_at.astimezone(UTC)


@dataclass(frozen=True)
class StoredRecord:
    """A deposit as the ledger holds it."""

    deposit: Deposit
    recorded_at: datetime


@dataclass(frozen=True)
class Recorded:
    """The deposit was new and is now stored, with its bucket's aggregate."""

    record: StoredRecord


@dataclass(frozen=True)
class Replayed:
    """The wallet's request id had already recorded this same payload; nothing changed."""

    record: StoredRecord


@dataclass(frozen=True)
class Conflicting:
    """The wallet's request id had already recorded another payload; nothing changed."""

    existing: StoredRecord


RecordOutcome = Recorded | Replayed | Conflicting


def outcome_for_existing(
    deposit: Deposit, existing: StoredRecord, stored_fingerprint: str
) -> Replayed | Conflicting:
    """The answer to a deposit whose (wallet, request id) already holds `existing`: a
    replay of it when the fingerprint stored with it equals the deposit's, else a conflict.

    The stored fingerprint decides, not one recomputed from the stored payload: it is what
    the first call fingerprinted, kept beside the record for this decision. Raises
    ValueError when `existing` is another wallet's or request id's record: answering with it
    would hand one wallet's record to another."""
    if (existing.deposit.wallet_id, existing.deposit.request_id) != (
        deposit.wallet_id,
        deposit.request_id,
    ):
        raise ValueError("the existing record is another (wallet, request id)'s")
    if stored_fingerprint == deposit.fingerprint:
        return Replayed(existing)
    return Conflicting(existing)
