"""WalletQuery: translates messages, asks the read store, builds the answer."""

from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from services.ledger.adapters.read_store import (
    PointTotals,
    ReadStore,
    ReadStoreUnavailable,
    RecordRow,
)
from services.ledger.domain.buckets import ceil_to_bucket
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.history import HourGrid, hour_grid, parse_time_zone
from services.ledger.domain.ids import parse_request_id, parse_wallet_id
from services.ledger.domain.instants import datetime_from_microseconds
from services.ledger.domain.money import format_amount
from services.ledger.domain.record_pages import (
    PagePosition,
    RecordsFilter,
    decode_page_token,
    encode_page_token,
    page_size,
)
from services.platform.as_of import MessageWithAsOf
from services.platform.grpc_errors import abort_invalid, abort_with_details
from services.platform.proto_time import (
    datetime_to_timestamp,
    optional_timestamp,
    required_timestamp,
    set_timestamp,
)
from wallet.v1 import query_pb2, query_pb2_grpc, records_pb2

_UNAVAILABLE = "the read model is unavailable; retry"


def history_response(
    grid: HourGrid, totals: list[PointTotals]
) -> query_pb2.GetBalanceHistoryResponse:
    """The answer, built from plain numbers and in place: an 8,760-point answer is built on
    every call, and nested constructors or Timestamp.FromDatetime cost three times more."""
    response = query_pb2.GetBalanceHistoryResponse()
    add_point = response.points.add
    for seconds, offset, (balance, change) in zip(
        grid.point_seconds, grid.offset_seconds, totals, strict=True
    ):
        point = add_point(balance=balance, change=change)
        point.time.seconds = seconds
        point.utc_offset.seconds = offset
    return response


def _record_message(wallet_id: str, row: RecordRow, record: records_pb2.Record) -> None:
    """Fills `record` in place (a page of 1,000 is built per call)."""
    record.wallet_id = wallet_id
    record.request_id = row.request_id
    record.amount = row.amount
    set_timestamp(record.occurred_at, row.occurred_at_us)
    set_timestamp(record.recorded_at, row.recorded_at_us)


def _set_as_of(message: MessageWithAsOf, as_of: datetime | None) -> None:
    if as_of is not None:
        message.as_of.CopyFrom(datetime_to_timestamp(as_of))


def _balance_instant(at: datetime) -> datetime:
    """The first 15-minute boundary at or after `at`: the read model keeps 15-minute sums."""
    try:
        return ceil_to_bucket(at)
    except OverflowError as error:  # past 9999-12-31T23:45Z there is no next boundary
        raise InvalidInput.single("at", "must be before 9999-12-31T23:45:00Z") from error


class WalletQueryServicer(query_pb2_grpc.WalletQueryServicer):
    def __init__(
        self, store: ReadStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    def GetBalanceHistory(
        self, request: query_pb2.GetBalanceHistoryRequest, context: grpc.ServicerContext
    ) -> query_pb2.GetBalanceHistoryResponse:
        try:
            wallet_id = parse_wallet_id(request.wallet_id)
            grid = hour_grid(
                required_timestamp(request, "start", round_up=True),
                required_timestamp(request, "end"),
                parse_time_zone(request.time_zone),
            )
            history = self._store.history(wallet_id, grid.bound_seconds)
        except InvalidInput as error:
            abort_invalid(context, error)
        except ReadStoreUnavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, _UNAVAILABLE)
        response = history_response(grid, history.points)
        _set_as_of(response, history.as_of)
        return response

    def GetBalance(
        self, request: query_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> query_pb2.GetBalanceResponse:
        """The balance at the first 15-minute boundary at or after `at` (default now): the
        read model keeps 15-minute sums, so that is the instant the answer is exact for."""
        try:
            wallet_id = parse_wallet_id(request.wallet_id)
            at = _balance_instant(optional_timestamp(request, "at", round_up=True) or self._clock())
            balance = self._store.balance(wallet_id, at)
        except InvalidInput as error:
            abort_invalid(context, error)
        except ReadStoreUnavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, _UNAVAILABLE)
        response = query_pb2.GetBalanceResponse(
            balance=format_amount(balance.balance), at=datetime_to_timestamp(at)
        )
        _set_as_of(response, balance.as_of)
        return response

    def ListRecords(
        self, request: query_pb2.ListRecordsRequest, context: grpc.ServicerContext
    ) -> query_pb2.ListRecordsResponse:
        try:
            listing = RecordsFilter(
                parse_wallet_id(request.wallet_id),
                required_timestamp(request, "start", round_up=True),
                required_timestamp(request, "end", round_up=True),
            )
            after = decode_page_token(listing, request.page_token)
            size = page_size(request.page_size)
            page = self._store.list_records(listing, after, size)
        except InvalidInput as error:
            abort_invalid(context, error)
        except ReadStoreUnavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, _UNAVAILABLE)
        response = query_pb2.ListRecordsResponse()
        add_record = response.records.add
        for row in page.records:
            _record_message(listing.wallet_id, row, add_record())
        if page.more:
            last = page.records[-1]
            after = PagePosition(datetime_from_microseconds(last.occurred_at_us), last.request_id)
            response.next_page_token = encode_page_token(listing, after)
        _set_as_of(response, page.as_of)
        return response

    def GetRecord(
        self, request: query_pb2.GetRecordRequest, context: grpc.ServicerContext
    ) -> query_pb2.GetRecordResponse:
        try:
            wallet_id = parse_wallet_id(request.wallet_id)
            found = self._store.find_record(wallet_id, parse_request_id(request.request_id))
        except InvalidInput as error:
            abort_invalid(context, error)
        except ReadStoreUnavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, _UNAVAILABLE)
        if found.record is None:
            freshness = query_pb2.ReadModelAsOf()
            _set_as_of(freshness, found.as_of)
            abort_with_details(
                context,
                grpc.StatusCode.NOT_FOUND,
                "the read model holds no record with this request_id in this wallet",
                freshness,
            )
        response = query_pb2.GetRecordResponse()
        _record_message(wallet_id, found.record, response.record)
        _set_as_of(response, found.as_of)
        return response
