"""Statements: a wallet's records and history as CSV (RFC 4180: a header row, CRLF line
ends, fields quoted where they hold a comma, a quote or a line break), amounts as the exact
decimal text the services answer. The records stream a page at a time, so a year of them
is never held in memory."""

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC

from gateway import calls
from wallet.v1 import query_pb2, records_pb2

CSV_MEDIA_TYPE = "text/csv"
RECORD_COLUMNS = ("wallet_id", "request_id", "datetime", "amount", "recorded_at")
HISTORY_COLUMNS = ("datetime", "balance", "change")

NextPage = Callable[[str], Awaitable[query_pb2.ListRecordsResponse]]


def wants_csv(accept: str) -> bool:
    """Whether an Accept header asks for CSV before JSON: text/csv listed (q > 0) and ranked
    above application/json and any wildcard."""
    ranked: dict[str, float] = {}
    for entry in accept.split(","):
        media_type, *parameters = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked[media_type.lower()] = max(quality, ranked.get(media_type.lower(), 0.0))
    csv_quality = ranked.get(CSV_MEDIA_TYPE, 0.0)
    others = (ranked.get(name, 0.0) for name in ("application/json", "application/*", "*/*"))
    return csv_quality > 0 and all(csv_quality > quality for quality in others)


def csv_rows(rows: Iterable[Iterable[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def record_row(record: records_pb2.Record) -> tuple[str, ...]:
    return (
        record.wallet_id,
        record.request_id,
        calls.utc_text(record.occurred_at.ToDatetime(tzinfo=UTC)),
        record.amount,
        calls.utc_text(record.recorded_at.ToDatetime(tzinfo=UTC)),
    )


async def records_csv(
    first: query_pb2.ListRecordsResponse, next_page: NextPage
) -> AsyncIterator[str]:
    """The header, then every page from `first` on, one chunk per page. A page that fails
    after the first raises, which ends the response without its last chunk: a client sees a
    broken transfer, never a statement that merely looks complete."""
    yield csv_rows([RECORD_COLUMNS])
    page = first
    while True:
        yield csv_rows(map(record_row, page.records))
        if not page.next_page_token:
            return
        page = await next_page(page.next_page_token)


def history_csv(answer: query_pb2.GetBalanceHistoryResponse) -> str:
    return csv_rows(
        [
            HISTORY_COLUMNS,
            *((calls.local_text(point), point.balance, point.change) for point in answer.points),
        ]
    )
