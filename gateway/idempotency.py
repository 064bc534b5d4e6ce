"""The idempotency key of a deposit, and the Idempotency-Key header that carries it back.

The key is the client's `Idempotency-Key` header, else one the gateway generates. It is
chosen before anything else about the deposit is checked and kept with the request, so that
every answer to the deposit carries it, errors included: a client that sent no key and got
a 503 or 504 retries with the key it was given, and the deposit is recorded at most once.
"""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from starlette.datastructures import Headers

from gateway.problems import Problem
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.ids import MAX_REQUEST_ID_LENGTH, REQUEST_ID_PATTERN, parse_request_id

IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_STATE = "idempotency_key"
_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REQUEST_ID_LENGTH,
    "pattern": f"^{REQUEST_ID_PATTERN.pattern}$",
}

# OpenAPI: the request header of a deposit, and the response header of its every answer.
KEY_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "schema": _KEY_SCHEMA,
    "description": f"1-{MAX_REQUEST_ID_LENGTH} printable ASCII characters. Without it the "
    "gateway generates a key and returns it in the Idempotency-Key response header: retry "
    "with that one. A trace id (X-Amzn-Trace-Id) is never used as a key: every call of one "
    "distributed trace shares it.",
}
KEY_HEADER_OF_SUCCESS: dict[str, Any] = {
    IDEMPOTENCY_KEY: {
        "required": True,
        "schema": _KEY_SCHEMA,
        "description": "the key the deposit is recorded under (sent or generated)",
    }
}
KEY_HEADER_OF_PROBLEMS: dict[str, Any] = {
    IDEMPOTENCY_KEY: {
        "required": False,
        "schema": _KEY_SCHEMA,
        "description": "the key this deposit was tried under (sent or generated): retry a "
        "503 or 504 with it, and the deposit is recorded at most once. Absent only from a 400 "
        "that refuses the Idempotency-Key header itself.",
    }
}
REPLAYED_HEADER: dict[str, Any] = {
    REPLAYED: {"required": True, "schema": {"type": "string", "enum": ["true"]}}
}


def request_key(headers: Headers) -> str:
    """The Idempotency-Key sent (it must be valid and sent once, else a 400 problem naming
    the header), else a new random key: nothing else in a request is a key. A trace id is not, since
    every call of one distributed trace shares its Root=, and two deposits in one trace
    would collapse into one."""
    sent = headers.getlist(IDEMPOTENCY_KEY)
    if len(sent) > 1:  # which one the client meant is unknowable; a proxy may merge them
        raise Problem(400, f"send one {IDEMPOTENCY_KEY}", errors={IDEMPOTENCY_KEY: "sent twice"})
    if sent:
        try:
            return parse_request_id(sent[0], IDEMPOTENCY_KEY)
        except InvalidInput as error:
            raise Problem.from_invalid(error) from error
    return str(uuid.uuid4())


async def deposit_key(request: Request) -> str:
    """Dependency: the deposit's key (see request_key), kept with the request for
    with_key_header. Declare it before the caller's dependency, so that refusals of the
    caller carry the key too."""
    key = request_key(request.headers)
    setattr(request.state, _STATE, key)
    return key


DepositKey = Annotated[str, Depends(deposit_key)]


def success_headers(key: str, *, replayed: bool) -> dict[str, str]:
    """The headers of a recorded deposit's answer: its key, and whether it was a replay."""
    return {IDEMPOTENCY_KEY: key, REPLAYED: "true"} if replayed else {IDEMPOTENCY_KEY: key}


def with_key_header(
    handler: Callable[[Request, Exception], Awaitable[Response]],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An exception handler whose answer carries the deposit's key once it is known (only
    deposits keep one)."""

    async def handle(request: Request, error: Exception) -> Response:
        response = await handler(request, error)
        key: str | None = getattr(request.state, _STATE, None)
        if key is not None:
            response.headers[IDEMPOTENCY_KEY] = key
        return response

    return handle
