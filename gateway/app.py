"""The gateway app: routes, problem handlers, health, metrics, and the gRPC channels'
lifetime."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import idempotency, observability, problems, routes_seed, routes_v1
from gateway.auth import Gatekeeper
from gateway.backends import Backends
from gateway.rate_limit import RateLimiter, warn_if_every_peer_is_trusted
from services.platform.auth.configured import load_verifier
from services.platform.settings import GatewaySettings

DESCRIPTION = """Records coin deposits exactly once and answers the balance at every hour.

Every API route needs `Authorization: Bearer <JWT>` whose `wallets` claim allows the
wallet. Amounts are decimal strings (JSON numbers are read exactly). Errors are
`application/problem+json`. Writes are idempotent by `Idempotency-Key`: every answer to a
deposit, errors included, carries the key it was tried under (generated when none was sent)
in an `Idempotency-Key` header; retry a 503 or 504 with it.
"""


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends(
            settings.command_address, settings.query_address, settings.gateway_deadline_seconds
        )
        yield
        await app.state.backends.close()

    app = FastAPI(
        title="Wallet ledger", version="1.0.0", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.gatekeeper = Gatekeeper(load_verifier(settings), RateLimiter(settings.rate_limit))
    warn_if_every_peer_is_trusted(settings.trusted_proxies)
    app.include_router(routes_v1.router)
    app.include_router(routes_seed.router)
    # Every problem answering a deposit carries its key, so that a client can retry it.
    with_key = idempotency.with_key_header
    app.add_exception_handler(problems.Problem, with_key(problems.problem_handler))
    app.add_exception_handler(RequestValidationError, with_key(problems.validation_handler))
    app.add_exception_handler(StarletteHTTPException, with_key(problems.http_error_handler))
    app.add_exception_handler(
        Exception, observability.with_trace_header(with_key(problems.unexpected_error_handler))
    )
    # Outside every other middleware, so it sees (and times) the answers they give too.
    app.add_middleware(observability.RequestObservability)
    app.add_api_route(observability.METRICS_PATH, observability.metrics, include_in_schema=False)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Both gRPC backends answer their health checks",
        responses={503: {"description": "A backend is not serving"}},
    )
    async def readyz() -> JSONResponse:
        backends = await app.state.backends.readiness()
        ready = all(backends.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "backends": backends},
            status_code=200 if ready else 503,
        )

    return app
