"""Years of 15-minute history written straight into the read model, much faster than
through DynamoDB and the updater: shard_aggregates by COPY, then bucket_totals and
day_totals derived from it by set-based SQL with the updater's own definitions."""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg

from benchmarks.figures import markdown_table
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.read_store import PostgresReadStore
from services.ledger.domain.buckets import BUCKET

BUCKETS_PER_DAY = 96

# The same sums as the updater's _RECOMPUTE_BUCKETS, _RECOMPUTE_DAYS and _RECOMPUTE_BALANCES
# (services/updater/projection_store.py), over every bucket at once.
_DERIVE_TOTALS = """
INSERT INTO bucket_totals (wallet_id, bucket, amount)
SELECT wallet_id, bucket, sum(amount) FROM shard_aggregates GROUP BY wallet_id, bucket;

INSERT INTO day_totals (wallet_id, day, amount, balance_after)
SELECT wallet_id, day, amount, sum(amount) OVER (PARTITION BY wallet_id ORDER BY day)
FROM (
  SELECT wallet_id, (bucket AT TIME ZONE 'UTC')::date AS day, sum(amount) AS amount
  FROM bucket_totals GROUP BY wallet_id, day
) days;

UPDATE projection_status SET last_pass_finished_at = now() WHERE id = 1;
ANALYZE shard_aggregates, bucket_totals, day_totals;
"""

_DIRECT_SUM = """
SELECT coalesce(sum(amount), 0) FROM shard_aggregates WHERE wallet_id = %s AND bucket < %s
"""


def direct_balance(connection: psycopg.Connection, wallet_id: str, instant: datetime) -> Decimal:
    """The wallet's balance before `instant` as a SUM over all its shard_aggregates rows,
    without the derived totals the read store uses."""
    row = connection.execute(_DIRECT_SUM, (wallet_id, instant)).fetchone()
    assert row is not None
    balance: Decimal = row[0]
    return balance


@dataclass(frozen=True)
class SeededWallet:
    """`days` days of buckets, each one filled on `shards` shards numbered from
    `first_shard`, ending (exclusive) at `end`."""

    wallet_id: str
    days: int
    end: datetime
    shards: int = 1
    first_shard: int = 0

    @property
    def first_bucket(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def buckets(self) -> int:
        return self.days * BUCKETS_PER_DAY


@dataclass(frozen=True)
class Seeding:
    wallets: list[SeededWallet]
    seconds: float
    balances_checked: int


def _copy_wallet(connection: psycopg.Connection, wallet: SeededWallet) -> None:
    # Seeded by wallet id: every run seeds the same amounts.
    amounts = random.Random(wallet.wallet_id)
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY shard_aggregates (wallet_id, bucket, shard, amount, record_count) FROM STDIN"
        ) as copy,
    ):
        for index in range(wallet.buckets):
            bucket = wallet.first_bucket + index * BUCKET
            for shard in range(wallet.first_shard, wallet.first_shard + wallet.shards):
                amount = Decimal(amounts.randrange(1, 100_000)).scaleb(-2)
                copy.write_row((wallet.wallet_id, bucket, shard, amount, amounts.randrange(1, 5)))


def _checked_balances(database_url: str, wallets: Sequence[SeededWallet]) -> int:
    """Compares the read store's balance with a direct SUM over shard_aggregates at a few
    instants of each wallet; raises when they differ (the seed would be wrong)."""
    engine = create_database_engine(database_url, pool_size=1)
    store = PostgresReadStore(engine)
    checked = 0
    try:
        with psycopg.connect(database_url) as connection:
            for wallet in wallets:
                for fraction in (0, 0.37, 0.5, 0.81, 1):
                    instant = wallet.first_bucket + round(wallet.buckets * fraction) * BUCKET
                    expected = direct_balance(connection, wallet.wallet_id, instant)
                    actual = store.balance(wallet.wallet_id, instant).balance
                    if actual != expected:
                        raise RuntimeError(
                            f"seeded read model is inconsistent: {wallet.wallet_id} at "
                            f"{instant}: read store {actual}, direct sum {expected}"
                        )
                    checked += 1
    finally:
        engine.dispose()
    return checked


def seed_read_model(database_url: str, wallets: Sequence[SeededWallet]) -> Seeding:
    """Fills an empty read model with the wallets' history, marks it projected, and checks
    a few balances."""
    started = time.perf_counter()
    with psycopg.connect(database_url) as connection:
        for wallet in wallets:
            _copy_wallet(connection, wallet)
        connection.execute(_DERIVE_TOTALS)
    seconds = time.perf_counter() - started
    return Seeding(list(wallets), seconds, _checked_balances(database_url, wallets))


def seeding_table(seeding: Seeding) -> str:
    return markdown_table(
        ["wallet", "days", "buckets", "shards", "shard_aggregates rows", "history"],
        [
            [
                w.wallet_id,
                w.days,
                f"{w.buckets:,}",
                w.shards,
                f"{w.buckets * w.shards:,}",
                f"{w.first_bucket:%Y-%m-%d %H:%M} .. {w.end:%Y-%m-%d %H:%M} UTC",
            ]
            for w in seeding.wallets
        ],
    )
