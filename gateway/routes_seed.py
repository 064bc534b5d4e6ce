"""The seed's API, unchanged for its clients, on the wallet `default`.

Amounts are answered as JSON numbers written exactly (1.1, never 1.1000000000000001), so
these bodies are rendered by hand rather than through floats.
"""

import json
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.responses import PlainTextResponse

from gateway import calls
from gateway.auth import API_PROBLEMS, SEED_WALLET, Caller, bearer_scheme, seed_caller
from gateway.bodies import deposit_request, json_object, only_fields, required_text
from gateway.idempotency import (
    KEY_HEADER_OF_PROBLEMS,
    KEY_HEADER_OF_SUCCESS,
    KEY_PARAMETER,
    REPLAYED_HEADER,
    DepositKey,
    success_headers,
)
from gateway.problems import Problem, problem_responses
from gateway.routes_v1 import BackendsDep
from gateway.schemas import SeedRecordIn, SeedRecordOut, SeedSearchIn

router = APIRouter(tags=["seed compatibility"])

SeedCallerDep = Annotated[Caller, Depends(seed_caller)]
_JSON = "application/json"
# The seed's clients spell the range fields both ways.
_RANGE_FIELDS = (("startDatetime", "endDatetime"), ("startDateTime", "endDateTime"))


def _seed_point(instant_text: str, amount: str) -> str:
    return f'{{"datetime": {json.dumps(instant_text)}, "amount": {amount}}}'


@router.post(
    "/",
    status_code=201,
    response_model=SeedRecordOut,
    summary="Record a deposit in the wallet `default` (the seed's API)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": SeedRecordIn.model_json_schema()}},
        },
        "parameters": [KEY_PARAMETER],
    },
    responses={
        201: {"description": "The new record", "headers": KEY_HEADER_OF_SUCCESS},
        200: {
            "description": "A replay of the same key",
            "model": SeedRecordOut,
            "headers": {**KEY_HEADER_OF_SUCCESS, **REPLAYED_HEADER},
        },
        **problem_responses(
            400, *API_PROBLEMS, 409, 413, 415, 422, 500, 503, 504, headers=KEY_HEADER_OF_PROBLEMS
        ),
    },
    dependencies=[Security(bearer_scheme)],
)
async def seed_record(
    key: DepositKey,  # before the caller: its refusals carry the key too
    request: Request,
    backends: BackendsDep,
    caller: SeedCallerDep,
) -> Response:
    occurred_at, amount = await deposit_request(request)
    stored, replayed = await calls.record_deposit(
        backends, caller, SEED_WALLET, key, occurred_at, amount
    )
    return Response(
        _seed_point(stored.occurred_at.ToDatetime(tzinfo=UTC).isoformat(), stored.amount),
        status_code=200 if replayed else 201,
        media_type=_JSON,
        headers=success_headers(key, replayed=replayed),
    )


@router.post(
    "/search",
    response_model=list[SeedRecordOut],
    summary="Balance at the end of each hour between two instants, in UTC (the seed's API)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": SeedSearchIn.model_json_schema()}},
        }
    },
    responses=problem_responses(400, *API_PROBLEMS, 413, 415, 500, 503, 504),
    dependencies=[Security(bearer_scheme)],
)
async def seed_search(request: Request, backends: BackendsDep, caller: SeedCallerDep) -> Response:
    body = await json_object(request)
    start_field, end_field = next(
        (fields for fields in _RANGE_FIELDS if fields[0] in body or fields[1] in body),
        _RANGE_FIELDS[0],
    )
    only_fields(body, (start_field, end_field))
    start = calls.parse_request_datetime(
        required_text(body, start_field), start_field, round_up=True
    )
    end = calls.parse_request_datetime(required_text(body, end_field), end_field)
    if start > end:
        raise Problem(400, f"{start_field} must not be after {end_field}")
    answer = await calls.balance_history(backends, caller, SEED_WALLET, start, end, "UTC")
    points = [
        _seed_point(point.time.ToDatetime(tzinfo=UTC).isoformat(), point.balance)
        for point in answer.points
    ]
    return Response("[" + ", ".join(points) + "]", media_type=_JSON)


@router.get(
    "/health-check",
    response_class=PlainTextResponse,
    summary="The seed's liveness check",
    responses={200: {"content": {"text/plain": {"example": "OK\n"}}}},
)
async def seed_health_check() -> PlainTextResponse:
    return PlainTextResponse("OK\n")
