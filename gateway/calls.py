"""The gateway's use of the gRPC services: build the request, call with a deadline, turn a
failed status into a Problem. Shared by the v1 routes and the seed's compat routes."""

import functools
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from gateway.auth import Caller
from gateway.backends import Backends
from gateway.idempotency import IDEMPOTENCY_KEY
from gateway.observability import current_trace_id
from gateway.problems import Problem
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.instants import parse_rfc3339
from services.platform.as_of import MessageWithAsOf
from services.platform.grpc_errors import status_detail
from services.platform.proto_time import datetime_to_timestamp
from services.platform.trace_ids import TRACE_ID_METADATA
from wallet.v1 import command_pb2, query_pb2, records_pb2

# gRPC field names as the HTTP API calls them.
_RECORD_FIELDS = {"occurred_at": "datetime", "request_id": IDEMPOTENCY_KEY}
_HISTORY_FIELDS = {"time_zone": "tz"}
_LISTING_FIELDS = {"page_size": "limit", "page_token": "cursor"}
_LOOKUP_FIELDS = {"request_id": IDEMPOTENCY_KEY}

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)


def parse_request_datetime(text: str, field: str, *, round_up: bool = False) -> datetime:
    """An RFC 3339 field of a request, or a 400 problem naming it. Digits beyond
    microseconds are truncated, as the gRPC services truncate a Timestamp's nanoseconds, or
    with `round_up` rounded up, as the query service rounds a range's start: a start of
    00:00:00.0000001 must not let the 00:00 point in."""
    try:
        return parse_rfc3339(text, field, round_up=round_up)
    except InvalidInput as error:
        raise Problem.from_invalid(error) from error


async def record_deposit(
    backends: Backends,
    caller: Caller,
    wallet_id: str,
    request_id: str,
    occurred_at: datetime,
    amount: str,
) -> tuple[records_pb2.Record, bool]:
    """(the stored record, whether it was a replay)."""
    request = command_pb2.RecordTransactionRequest(
        wallet_id=wallet_id,
        request_id=request_id,
        occurred_at=datetime_to_timestamp(occurred_at),
        amount=amount,
    )
    response = await _call(
        backends.command.RecordTransaction, request, caller, backends, _RECORD_FIELDS
    )
    return response.record, response.replayed


async def balance_history(
    backends: Backends,
    caller: Caller,
    wallet_id: str,
    start: datetime,
    end: datetime,
    time_zone: str,
) -> query_pb2.GetBalanceHistoryResponse:
    request = query_pb2.GetBalanceHistoryRequest(
        wallet_id=wallet_id,
        start=datetime_to_timestamp(start),
        end=datetime_to_timestamp(end),
        time_zone=time_zone,
    )
    return await _call(backends.query.GetBalanceHistory, request, caller, backends, _HISTORY_FIELDS)


async def balance(
    backends: Backends, caller: Caller, wallet_id: str
) -> query_pb2.GetBalanceResponse:
    request = query_pb2.GetBalanceRequest(wallet_id=wallet_id)
    return await _call(backends.query.GetBalance, request, caller, backends, {})


async def records_page(
    backends: Backends,
    caller: Caller,
    wallet_id: str,
    start: datetime,
    end: datetime,
    page_size: int,
    page_token: str,
) -> query_pb2.ListRecordsResponse:
    request = query_pb2.ListRecordsRequest(
        wallet_id=wallet_id,
        start=datetime_to_timestamp(start),
        end=datetime_to_timestamp(end),
        page_size=page_size,
        page_token=page_token,
    )
    return await _call(backends.query.ListRecords, request, caller, backends, _LISTING_FIELDS)


async def record_by_key(
    backends: Backends, caller: Caller, wallet_id: str, request_id: str
) -> query_pb2.GetRecordResponse:
    """The record, or a 404 problem that says how fresh the read model was (`as_of`)."""
    request = query_pb2.GetRecordRequest(wallet_id=wallet_id, request_id=request_id)
    return await _call(backends.query.GetRecord, request, caller, backends, _LOOKUP_FIELDS)


async def _call(
    method: grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT],
    request: RequestT,
    caller: Caller,
    backends: Backends,
    fields: dict[str, str],
) -> ResponseT:
    """A service's answer, or its failure as a Problem naming the API's `fields`."""
    try:
        return await method(request, timeout=backends.deadline, metadata=_metadata(caller))
    except grpc.RpcError as error:
        problem = Problem.from_rpc_error(error, fields)
        # Only GetRecord answers NOT_FOUND, with how fresh the read model's "not found" is.
        if (
            problem.status == 404
            and (freshness := status_detail(error, query_pb2.ReadModelAsOf)) is not None
        ):
            problem.extensions["as_of"] = as_of_text(freshness)
        raise problem from error


def _metadata(caller: Caller) -> tuple[tuple[str, str], ...]:
    """Who is calling, and the request's trace id for the services' logs."""
    return (*caller.metadata, (TRACE_ID_METADATA, current_trace_id()))


def utc_text(instant: datetime) -> str:
    """RFC 3339 in UTC with a Z."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def local_text(point: query_pb2.BalancePoint) -> str:
    """The point's time in RFC 3339 in its zone's offset, e.g. 2019-10-05T15:00:00+01:00,
    as datetime.isoformat writes it. A year's answer formats 8,760 of these per call, and
    fromtimestamp plus isoformat took half of the route's time: a point at a whole local hour
    (every history point: they are hour starts) is its local day's text, cached, the hour's
    and the offset's; any other instant goes through datetime."""
    seconds, offset = point.time.seconds, point.utc_offset.seconds
    day, second_of_day = divmod(seconds + offset, _DAY_SECONDS)
    hour, rest = divmod(second_of_day, 3600)
    if rest:
        return datetime.fromtimestamp(seconds, _fixed_zone(offset)).isoformat()
    return _day_text(day) + _HOUR_TEXTS[hour] + _offset_text(offset)


_DAY_SECONDS = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_HOUR_TEXTS = [f"T{hour:02d}:00:00" for hour in range(24)]


@functools.lru_cache(maxsize=1024)
def _day_text(days_since_epoch: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + days_since_epoch).isoformat()


@functools.cache
def _offset_text(offset_seconds: int) -> str:
    """The offset as isoformat ends a time with it: +01:00, -03:30, +00:00."""
    return datetime(2000, 1, 1, tzinfo=_fixed_zone(offset_seconds)).isoformat()[19:]


@functools.cache
def _fixed_zone(offset_seconds: int) -> timezone:
    return timezone(timedelta(seconds=offset_seconds))


def as_of_text(answer: MessageWithAsOf) -> str | None:
    """When the read model was last brought up to date; None before the first pass."""
    if not answer.HasField("as_of"):
        return None
    return utc_text(answer.as_of.ToDatetime(tzinfo=UTC))
