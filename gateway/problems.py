"""Errors as application/problem+json (RFC 9457), and how gRPC statuses map to HTTP."""

import logging
from typing import Any

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.ledger.domain.errors import InvalidInput
from services.platform.grpc_errors import field_violations

log = logging.getLogger("wallet.gateway")

PROBLEM_MEDIA_TYPE = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="wallet-ledger"'

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.ALREADY_EXISTS: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    # What a stopping server answers to calls no handler took yet (grpc/grpc#41785): retry.
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_TITLES = {
    400: "Invalid request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict, retry",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Idempotency key reused with a different payload",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable, retry",
    504: "Upstream timed out, retry",
}
# Messages from these statuses are written for clients; others may carry internals.
_CLIENT_SAFE = {400, 401, 403, 404, 409, 422, 429}


class Problem(Exception):
    """An error response; raise it from a route."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or {}
        self.headers = headers or {}
        # RFC 9457 extension members, e.g. a 404's as_of.
        self.extensions: dict[str, Any] = {}

    @classmethod
    def from_invalid(cls, error: InvalidInput) -> "Problem":
        return cls(400, str(error), errors={v.field: v.description for v in error.violations})

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, fields: dict[str, str]) -> "Problem":
        """The problem for a failed gRPC call; `fields` renames gRPC fields to API fields."""
        status = HTTP_STATUS.get(error.code(), 500)
        errors = {fields.get(name, name): text for name, text in field_violations(error).items()}
        detail = error.details() if status in _CLIENT_SAFE else None
        if errors:  # the service's message names its gRPC fields; say the API's names
            detail = "; ".join(f"{field}: {text}" for field, text in errors.items())
        # 504: the call may still be running; an immediate retry would race it.
        headers = {"Retry-After": "1"} if status in (409, 429, 503, 504) else {}
        if status == 401:  # RFC 9110: a 401 names its scheme
            headers["WWW-Authenticate"] = BEARER_CHALLENGE

        return cls(status, detail, errors=errors, headers=headers)

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = [{"field": f, "message": m} for f, m in self.errors.items()]
        body.update(self.extensions)
        return JSONResponse(
            body, status_code=self.status, headers=self.headers, media_type=PROBLEM_MEDIA_TYPE
        )


async def problem_handler(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return error.response()


async def validation_handler(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own validation (path and query parameters) as a 400 problem."""
    assert isinstance(error, RequestValidationError)
    errors = {
        ".".join(str(part) for part in e["loc"] if part not in ("query", "path", "body")): e["msg"]
        for e in error.errors()
    }
    return Problem(400, "invalid request parameters", errors=errors).response()


async def http_error_handler(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405 and (allowed := _routed_methods(request)):
        # Starlette names the methods of the first route on the path; FastAPI serves one
        # path by a route per operation (GET and POST /records), and all of them are allowed.
        headers["Allow"] = ", ".join(allowed)
    return Problem(error.status_code, str(error.detail), headers=headers).response()


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _routed_methods(request: Request) -> list[str]:
    """The methods the app's routing serves on the request's path: each asked of every
    route as the request with that method (routes may be routers; matching is their API)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def unexpected_error_handler(request: Request, error: Exception) -> JSONResponse:
    """Anything unforeseen: a 500 without internals (they go to the log). Starlette re-raises
    after this response and uvicorn then drops the connection, so say so to the client."""
    log.error("unexpected error", exc_info=error, extra={"path": request.url.path})
    return Problem(500, headers={"Connection": "close"}).response()


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "as_of": {
            "type": ["string", "null"],
            "description": "a 404 of a record: the read model's as_of when it was not found",
        },
    },
}


def problem_responses(
    *statuses: int, headers: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems a route can answer with, each with `headers` (OpenAPI
    header objects by name) when given."""
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
            **({"headers": headers} if headers else {}),
        }
        for status in statuses
    }
