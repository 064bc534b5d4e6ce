"""A wallet's records written straight into the read model's `records` table by one
INSERT ... SELECT over generate_series: a million in seconds, where DynamoDB and the
updater would take hours. Request ids look like clients' (UUIDs, from an md5 of the wallet
and the record's number, so every run seeds the same ids), and records come in groups at
one instant, to the millisecond, as bursts of deposits do: pages must order them by
request id."""

import time
from dataclasses import dataclass
from datetime import datetime

import psycopg

from benchmarks.figures import markdown_table

# Records per instant: consecutive records share their occurred_at in groups of this size.
SAME_INSTANT = 3

_SEED_RECORDS = """
INSERT INTO records (wallet_id, request_id, occurred_at, amount, recorded_at)
SELECT %(wallet_id)s,
       md5(%(wallet_id)s || ':' || n)::uuid::text,
       instant,
       ((n * 7919) %% 100000 + 1) * 0.01,
       instant + interval '1.5 seconds'
FROM generate_series(0::bigint, %(count)s - 1) AS n,
     LATERAL (SELECT date_trunc('milliseconds',
                %(start)s::timestamptz + (n / %(same)s) * %(step)s * interval '1 microsecond')
              AS instant) AS at
"""


@dataclass(frozen=True)
class SeededRecords:
    """`count` records of `wallet_id` with start <= occurred_at < end."""

    wallet_id: str
    count: int
    start: datetime
    end: datetime
    seconds: float

    def table(self) -> str:
        return markdown_table(
            ["wallet", "records", "per instant", "occurred_at", "seeded in"],
            [
                [
                    self.wallet_id,
                    f"{self.count:,}",
                    SAME_INSTANT,
                    f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC",
                    f"{self.seconds:.1f} s",
                ]
            ],
        )


def seed_records(
    database_url: str, wallet_id: str, count: int, start: datetime, end: datetime
) -> SeededRecords:
    """Inserts `count` records spread evenly over [start, end), then ANALYZE."""
    instants = -(-count // SAME_INSTANT)
    step = (end - start) // instants // (end - start).resolution
    started = time.perf_counter()
    with psycopg.connect(database_url) as connection:
        parameters = {
            "wallet_id": wallet_id,
            "count": count,
            "start": start,
            "same": SAME_INSTANT,
            "step": step,
        }
        connection.execute(_SEED_RECORDS, parameters)
        connection.execute("ANALYZE records")
    return SeededRecords(wallet_id, count, start, end, time.perf_counter() - started)
