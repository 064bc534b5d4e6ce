"""`wallet bench gateway`, statements: a year of one wallet's records exported as CSV over
REST (GET /v1/wallets/{w}/records?start&end with Accept: text/csv), in records/s, and the
gateway's resident memory while it streams: a month's export and the whole year's should
grow it alike, for the gateway holds a page at a time, never the statement.

The records go straight into the stack's read model (benchmarks/records_seed.py), as the
history's buckets do."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from benchmarks.figures import Target, markdown_table
from benchmarks.memory import SAMPLE_SECONDS, PeakSampler, rss_bytes
from benchmarks.records_seed import SAME_INSTANT, SeededRecords, seed_records
from benchmarks.stack import Stack, stack_processes

WALLET = "gw-statement"
DEFAULT_RECORDS = 200_000
GATEWAY = "gateway"
# How much more the gateway may grow streaming twelve months than streaming one.
GROWTH_LIMIT_MB = 10.0
_RANGES = {"1 month": timedelta(days=30), "12 months": timedelta(days=365)}
_COUNT_SQL = """
SELECT count(*) FROM records WHERE wallet_id = %s AND occurred_at >= %s AND occurred_at < %s
"""


@dataclass(frozen=True)
class Export:
    label: str
    records: int
    expected: int
    seconds: float
    rss_before: int
    rss_peak: int

    @property
    def growth_mb(self) -> float:
        return (self.rss_peak - self.rss_before) / 1e6

    def row(self) -> list[object]:
        return [
            self.label,
            f"{self.records:,}",
            "yes" if self.records == self.expected else f"NO ({self.expected:,} in SQL)",
            f"{self.seconds:.2f}",
            f"{self.records / self.seconds:,.0f}",
            f"{self.rss_before / 1e6:.0f}",
            f"{self.rss_peak / 1e6:.0f}",
            f"{self.growth_mb:.1f}",
        ]


@dataclass(frozen=True)
class StatementsResult:
    seeded: SeededRecords
    exports: list[Export]


def _gateway_rss(stack_pid: int, stack: Stack) -> Callable[[], dict[str, int]]:
    processes = stack_processes(stack_pid, stack.pgdata).get(GATEWAY, [])
    if not processes:
        raise RuntimeError("the stack runs no gateway process")
    return lambda: {GATEWAY: rss_bytes(processes)}


def _csv_rows(client: httpx.Client, start: datetime, end: datetime) -> int:
    """Streams the export and counts its data rows (the seeded fields hold no line break)."""
    params = {"start": _utc_text(start), "end": _utc_text(end)}
    lines = 0
    with client.stream(
        "GET", f"/v1/wallets/{WALLET}/records", params=params, headers={"Accept": "text/csv"}
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            lines += chunk.count(b"\n")
    return lines - 1  # the header


def _utc_text(instant: datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%SZ}"


def measure_statements(
    stack: Stack, database_url: str, stack_pid: int, records: int
) -> StatementsResult:
    """Seeds a year of `records`, exports a day untimed (the route's first use), then a month
    and the year, sampling the gateway's RSS from just before each export to its end."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    seeded = seed_records(database_url, WALLET, records, end - timedelta(days=365), end)
    measure_rss = _gateway_rss(stack_pid, stack)
    exports = []
    with (
        httpx.Client(base_url=stack.gateway_url, headers=stack.auth.headers, timeout=300) as client,
        psycopg.connect(database_url) as connection,
    ):
        _csv_rows(client, end - timedelta(days=1), end)
        for label, span in _RANGES.items():
            start = end - span
            row = connection.execute(_COUNT_SQL, (WALLET, start, end)).fetchone()
            assert row is not None
            before = measure_rss()[GATEWAY]
            with PeakSampler(measure_rss, SAMPLE_SECONDS, "gateway-rss") as peak:
                started = time.perf_counter()
                rows = _csv_rows(client, start, end)
                seconds = time.perf_counter() - started
            exports.append(
                Export(label, rows, row[0], seconds, before, max(peak.peaks[GATEWAY], before))
            )
    return StatementsResult(seeded, exports)


def report(result: StatementsResult) -> str:
    seeded = result.seeded
    return "\n\n".join(
        [
            f"Wallet {WALLET}: {seeded.count:,} records over a year ({SAME_INSTANT} per "
            f"instant, UUID request ids) inserted straight into the stack's `records` table in "
            f"{seeded.seconds:.1f} s. Each export is GET /v1/wallets/{{w}}/records?start&end "
            "with `Accept: text/csv`, streamed by httpx and its lines counted, after one "
            "untimed export of a day; the gateway's RSS is read just before the export and "
            f"sampled every {SAMPLE_SECONDS * 1000:.0f} ms until it ends.",
            markdown_table(
                [
                    "export",
                    "CSV records",
                    "all of SQL's",
                    "seconds",
                    "records/s",
                    "gateway RSS before MB",
                    "peak MB",
                    "growth MB",
                ],
                [export.row() for export in result.exports],
            ),
        ]
    )


def targets(result: StatementsResult) -> list[Target]:
    growth = {export.label: export.growth_mb for export in result.exports}
    return [
        Target(
            "gateway RSS growth, 12 months of CSV over 1 month",
            growth["12 months"] - growth["1 month"],
            GROWTH_LIMIT_MB,
            " MB",
        )
    ]
