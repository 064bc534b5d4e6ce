"""`wallet bench read`, statements: a wallet of 1,000,000 records in the read model's
`records` table, ListRecords over real gRPC at page 1 and at page 1,000 (page_size 1,000),
and the page-1,000 rows from one SQL statement via psycopg, the three taking turns.

Page 1,000's token is encoded, as the query service would have issued it, for the position
of the 999,000th record (read by SQL): walking 999 pages would time nothing more.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from benchmarks.auth import BenchAuth
from benchmarks.figures import Target, markdown_table, milliseconds, percentile
from benchmarks.records_seed import SAME_INSTANT, SeededRecords, seed_records
from benchmarks.turns import timed_in_turns
from services.ledger.domain.record_pages import (
    MAX_PAGE_SIZE,
    PagePosition,
    RecordsFilter,
    encode_page_token,
)
from services.platform.proto_time import datetime_to_timestamp
from wallet.v1 import query_pb2, query_pb2_grpc

WALLET = "records-million"
RECORDS = 1_000_000
DEEP_PAGE = 1000
DEPTH_LIMIT = 1.2
SQL_LIMIT = 1.5

FIRST = "gRPC ListRecords, page 1"
DEEP = f"gRPC ListRecords, page {DEEP_PAGE:,}"
SQL = f"SQL, the rows of page {DEEP_PAGE:,}"
# What any call costs the query service and the client, whatever it reads: the floor
# under a page's time (auth, the snapshot's round trips, gRPC).
ONE_RECORD = "gRPC GetRecord, one record"

# The rows of a page as one statement: the read store's index and keyset condition.
_PAGE_SQL = """
SELECT request_id, occurred_at, amount, recorded_at FROM records
WHERE wallet_id = %(wallet_id)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
  AND (occurred_at, request_id) > (%(after_time)s, %(after_id)s)
ORDER BY occurred_at, request_id
LIMIT %(limit)s
"""
_POSITION_SQL = """
SELECT occurred_at, request_id FROM records
WHERE wallet_id = %s ORDER BY occurred_at, request_id OFFSET %s LIMIT 1
"""


def seed(database_url: str, end: datetime) -> SeededRecords:
    """A year of records up to `end`."""
    return seed_records(database_url, WALLET, RECORDS, end - timedelta(days=365), end)


@dataclass(frozen=True)
class RecordsMeasurement:
    seeded: SeededRecords
    latencies: dict[str, list[float]]
    agreement: list[list[object]]


def _deep_position(connection: psycopg.Connection, rows_before: int) -> PagePosition:
    row = connection.execute(_POSITION_SQL, (WALLET, rows_before - 1)).fetchone()
    assert row is not None, "the seed holds fewer records than the page's position"
    return PagePosition(*row)


def measure(
    stub: query_pb2_grpc.WalletQueryStub,
    auth: BenchAuth,
    connection: psycopg.Connection,
    seeded: SeededRecords,
    calls: int,
    warmup: int,
) -> RecordsMeasurement:
    listing = RecordsFilter(WALLET, seeded.start, seeded.end)
    after = _deep_position(connection, (DEEP_PAGE - 1) * MAX_PAGE_SIZE)

    def page(token: str) -> Callable[[], query_pb2.ListRecordsResponse]:
        request = query_pb2.ListRecordsRequest(
            wallet_id=WALLET,
            start=datetime_to_timestamp(seeded.start),
            end=datetime_to_timestamp(seeded.end),
            page_size=MAX_PAGE_SIZE,
            page_token=token,
        )
        return lambda: stub.ListRecords(request, timeout=60, metadata=auth.metadata)

    parameters = {
        "wallet_id": WALLET,
        "start": seeded.start,
        "end": seeded.end,
        "after_time": after.occurred_at,
        "after_id": after.request_id,
        "limit": MAX_PAGE_SIZE,
    }
    fetches: dict[str, Callable[[], object]] = {
        FIRST: page(""),
        DEEP: page(encode_page_token(listing, after)),
        SQL: lambda: connection.execute(_PAGE_SQL, parameters).fetchall(),
        ONE_RECORD: lambda: stub.GetRecord(
            query_pb2.GetRecordRequest(wallet_id=WALLET, request_id=after.request_id),
            timeout=60,
            metadata=auth.metadata,
        ),
    }
    latencies = timed_in_turns(fetches, calls, warmup)
    deep = page(encode_page_token(listing, after))()
    rows = connection.execute(_PAGE_SQL, parameters).fetchall()
    equal = sum(
        1
        for record, row in zip(deep.records, rows, strict=False)
        if (record.request_id, record.occurred_at.ToDatetime(tzinfo=row[1].tzinfo))
        == (row[0], row[1])
    )
    agreement: list[list[object]] = [
        [f"{len(deep.records):,}", f"{len(rows):,}", f"{equal:,}", bool(deep.next_page_token)]
    ]
    return RecordsMeasurement(seeded, latencies, agreement)


def report(measurement: RecordsMeasurement, calls: int, warmup: int) -> str:
    seeded = measurement.seeded
    rows = [
        [
            path,
            len(samples),
            milliseconds(percentile(samples, 50)),
            milliseconds(percentile(samples, 99)),
        ]
        for path, samples in measurement.latencies.items()
    ]
    return "\n\n".join(
        [
            f"ListRecords on a wallet of {seeded.count:,} records (one statement over "
            f"generate_series filled `records`, {SAME_INSTANT} records per instant, UUID request "
            f"ids), page_size {MAX_PAGE_SIZE:,}: page 1 and page {DEEP_PAGE:,} (its token "
            f"encoded for the position of record {(DEEP_PAGE - 1) * MAX_PAGE_SIZE:,}) over "
            f"gRPC, and the same {MAX_PAGE_SIZE:,} rows as page {DEEP_PAGE:,} from one SQL "
            f"statement via psycopg (the store's keyset condition), and GetRecord of one record "
            f"(what any call costs), {calls} calls each after {warmup} warm-up calls, taking "
            "turns.",
            seeded.table(),
            markdown_table(["path", "calls", "p50 ms", "p99 ms"], rows),
            markdown_table(
                ["gRPC records", "SQL rows", "same request id and instant", "next page token"],
                measurement.agreement,
            ),
        ]
    )


def targets(measurement: RecordsMeasurement) -> list[Target]:
    p50 = {path: percentile(samples, 50) for path, samples in measurement.latencies.items()}
    return [
        Target(f"ListRecords p50 page {DEEP_PAGE:,} / page 1", p50[DEEP] / p50[FIRST], DEPTH_LIMIT),
        Target(f"ListRecords p50 gRPC / SQL (page {DEEP_PAGE:,})", p50[DEEP] / p50[SQL], SQL_LIMIT),
    ]
