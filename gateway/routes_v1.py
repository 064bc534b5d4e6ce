"""/v1: deposits, records, balance history and balance, per wallet."""

import json
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway import calls
from gateway.auth import API_PROBLEMS, Caller, bearer_scheme, wallet_caller
from gateway.backends import Backends
from gateway.bodies import deposit_request
from gateway.idempotency import (
    KEY_HEADER_OF_PROBLEMS,
    KEY_HEADER_OF_SUCCESS,
    KEY_PARAMETER,
    REPLAYED_HEADER,
    DepositKey,
    success_headers,
)
from gateway.problems import problem_responses
from gateway.schemas import (
    BalanceOut,
    HistoryOut,
    RecordIn,
    RecordOut,
    RecordsOut,
    RequestIdPath,
    WalletIdPath,
)
from gateway.statements import CSV_MEDIA_TYPE, history_csv, records_csv, wants_csv
from services.ledger.domain.record_pages import MAX_PAGE_SIZE
from services.platform.as_of import MessageWithAsOf
from wallet.v1 import query_pb2, records_pb2

_INSTANT = "RFC 3339 with an offset"
# What the routes that can answer CSV say of it in OpenAPI.
_CSV_CONTENT = {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}
# A CSV document has no place for the read model's as_of, which JSON answers carry: the
# header gives it (absent before the updater's first pass). For a streamed listing it is
# the first page's; later pages come from later snapshots, which hold at least as much.
AS_OF_HEADER = "Read-Model-As-Of"
_JSON_OR_CSV_HEADERS = {
    AS_OF_HEADER: {
        "description": "CSV only, after the updater's first pass: every record acknowledged "
        "before it is in the answer",
        "schema": {"type": "string", "format": "date-time"},
    },
    "Vary": {"description": "Accept: the answer is JSON or CSV", "schema": {"type": "string"}},
}


# The routes that answer JSON or CSV by the Accept header say so to caches.
_NEGOTIATED = {"Vary": "Accept"}


def _csv_headers(answer: MessageWithAsOf) -> dict[str, str]:
    as_of = calls.as_of_text(answer)
    return {**_NEGOTIATED, AS_OF_HEADER: as_of} if as_of else _NEGOTIATED


# OpenAPI links from a deposit to reads of its wallet: clients (and schemathesis's stateful
# phase) follow them.
_RECORDED_WALLET_LINKS = {
    "balance": {
        "operationId": "getBalance",
        "parameters": {"wallet_id": "$request.path.wallet_id"},
    },
    "history": {
        "operationId": "getBalanceHistory",
        "parameters": {"wallet_id": "$request.path.wallet_id"},
    },
}

router = APIRouter(
    prefix="/v1/wallets/{wallet_id}", tags=["wallets"], dependencies=[Security(bearer_scheme)]
)


def backends(request: Request) -> Backends:
    found: Backends = request.app.state.backends
    return found


BackendsDep = Annotated[Backends, Depends(backends)]
WalletCallerDep = Annotated[Caller, Depends(wallet_caller)]


def record_body(record: records_pb2.Record) -> dict[str, str]:
    return {
        "wallet_id": record.wallet_id,
        "request_id": record.request_id,
        "datetime": calls.utc_text(record.occurred_at.ToDatetime(tzinfo=UTC)),
        "amount": record.amount,
        "recorded_at": calls.utc_text(record.recorded_at.ToDatetime(tzinfo=UTC)),
    }


@router.post(
    "/records",
    operation_id="recordDeposit",
    status_code=201,
    response_model=RecordOut,
    summary="Record a deposit (idempotent by Idempotency-Key)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RecordIn.model_json_schema()}},
        },
        "parameters": [KEY_PARAMETER],
    },
    responses={
        201: {
            "description": "The new record",
            "headers": KEY_HEADER_OF_SUCCESS,
            "links": _RECORDED_WALLET_LINKS,
        },
        200: {
            "description": "A replay: the original record (header Idempotent-Replayed: true)",
            "model": RecordOut,
            "headers": {**KEY_HEADER_OF_SUCCESS, **REPLAYED_HEADER},
            "links": _RECORDED_WALLET_LINKS,
        },
        **problem_responses(
            400, *API_PROBLEMS, 409, 413, 415, 422, 500, 503, 504, headers=KEY_HEADER_OF_PROBLEMS
        ),
    },
)
async def record(
    wallet_id: WalletIdPath,
    key: DepositKey,  # before the caller: its refusals carry the key too
    request: Request,
    backends: BackendsDep,
    caller: WalletCallerDep,
) -> JSONResponse:
    occurred_at, amount = await deposit_request(request)
    stored, replayed = await calls.record_deposit(
        backends, caller, wallet_id, key, occurred_at, amount
    )
    return JSONResponse(
        record_body(stored),
        status_code=200 if replayed else 201,
        headers=success_headers(key, replayed=replayed),
    )


@router.get(
    "/records",
    operation_id="listRecords",
    response_model=RecordsOut,
    summary="The wallet's records with start <= datetime < end, a page at a time (or CSV)",
    description=(
        "Records in (datetime, request_id) order. `next_cursor` (and a `Link: <...>; "
        'rel="next"` header) continues the listing; a cursor sent with another start or end '
        "is refused. With `Accept: text/csv` every page from `cursor` on streams as one CSV."
    ),
    responses={
        200: {
            "content": _CSV_CONTENT,
            "headers": {"Link": {"schema": {"type": "string"}}, **_JSON_OR_CSV_HEADERS},
        },
        **problem_responses(400, *API_PROBLEMS, 500, 503, 504),
    },
)
async def list_records(
    wallet_id: WalletIdPath,
    request: Request,
    backends: BackendsDep,
    caller: WalletCallerDep,
    start: Annotated[str, Query(description=_INSTANT, examples=["2019-10-05T00:00:00Z"])],
    end: Annotated[str, Query(description=_INSTANT, examples=["2019-10-06T00:00:00Z"])],
    limit: Annotated[
        int, Query(ge=0, description=f"records per page: 0 means 100, at most {MAX_PAGE_SIZE}")
    ] = 0,
    cursor: Annotated[str, Query(description="a previous page's next_cursor")] = "",
) -> Response:
    since = calls.parse_request_datetime(start, "start", round_up=True)
    until = calls.parse_request_datetime(end, "end", round_up=True)
    as_csv = wants_csv(request.headers.get("accept", ""))
    size = MAX_PAGE_SIZE if as_csv else min(limit, MAX_PAGE_SIZE)

    async def page(token: str) -> query_pb2.ListRecordsResponse:
        return await calls.records_page(backends, caller, wallet_id, since, until, size, token)

    first = await page(cursor)  # before the answer starts: its problems are still answers
    if as_csv:
        return StreamingResponse(
            records_csv(first, page), media_type=CSV_MEDIA_TYPE, headers=_csv_headers(first)
        )
    headers = dict(_NEGOTIATED)
    if first.next_page_token:
        following = request.url.include_query_params(cursor=first.next_page_token)
        headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    body = {
        "wallet_id": wallet_id,
        "records": [record_body(record) for record in first.records],
        "next_cursor": first.next_page_token or None,
        "as_of": calls.as_of_text(first),
    }
    return JSONResponse(body, headers=headers)


@router.get(
    "/records/{request_id:path}",
    operation_id="getRecord",
    response_model=RecordOut,
    summary="One record by its Idempotency-Key",
    responses=problem_responses(400, *API_PROBLEMS, 404, 500, 503, 504),
)
async def get_record(
    wallet_id: WalletIdPath,
    request_id: RequestIdPath,
    backends: BackendsDep,
    caller: WalletCallerDep,
) -> JSONResponse:
    found = await calls.record_by_key(backends, caller, wallet_id, request_id)
    return JSONResponse(record_body(found.record))


@router.get(
    "/history",
    operation_id="getBalanceHistory",
    response_model=HistoryOut,
    summary="Balance at every hour start between start and end, in a time zone (or CSV)",
    responses={
        200: {"content": _CSV_CONTENT, "headers": _JSON_OR_CSV_HEADERS},
        **problem_responses(400, *API_PROBLEMS, 500, 503, 504),
    },
)
async def history(
    wallet_id: WalletIdPath,
    request: Request,
    backends: BackendsDep,
    caller: WalletCallerDep,
    start: Annotated[
        str, Query(description="RFC 3339 with offset", examples=["2019-10-05T12:00:00Z"])
    ],
    end: Annotated[
        str, Query(description="RFC 3339 with offset", examples=["2019-10-05T14:00:00Z"])
    ],
    tz: Annotated[str, Query(description="IANA time zone", examples=["Europe/Paris"])] = "UTC",
) -> Response:
    answer = await calls.balance_history(
        backends,
        caller,
        wallet_id,
        calls.parse_request_datetime(start, "start", round_up=True),
        calls.parse_request_datetime(end, "end"),
        tz,
    )
    if wants_csv(request.headers.get("accept", "")):
        return Response(
            history_csv(answer), media_type=CSV_MEDIA_TYPE, headers=_csv_headers(answer)
        )
    # Rendered by hand: a year is 8,760 points, and dicts through json.dumps took twice as
    # long on the event loop. Times and decimal strings need no escaping.
    points = ",".join(
        f'{{"datetime":"{calls.local_text(point)}",'
        f'"balance":"{point.balance}","change":"{point.change}"}}'
        for point in answer.points
    )
    zone = tz or "UTC"  # the query service reads an empty zone as UTC
    head = json.dumps(
        {"wallet_id": wallet_id, "time_zone": zone, "as_of": calls.as_of_text(answer)},
        separators=(",", ":"),
    )
    return Response(
        f'{head[:-1]},"points":[{points}]}}', media_type="application/json", headers=_NEGOTIATED
    )


@router.get(
    "/balance",
    operation_id="getBalance",
    response_model=BalanceOut,
    summary="The wallet's current balance",
    responses=problem_responses(400, *API_PROBLEMS, 500, 503, 504),
)
async def balance(
    wallet_id: WalletIdPath, backends: BackendsDep, caller: WalletCallerDep
) -> BalanceOut:
    answer = await calls.balance(backends, caller, wallet_id)
    return BalanceOut(
        wallet_id=wallet_id,
        balance=answer.balance,
        at=calls.utc_text(answer.at.ToDatetime(tzinfo=UTC)),
        as_of=calls.as_of_text(answer),
    )
