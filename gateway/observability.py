"""The gateway's request metrics, its one log line per request, and trace ids: each request
keeps the X-Amzn-Trace-Id it came with (or a new one) for its whole life, and the response
carries it back."""

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.platform.trace_ids import accepted_trace_id, new_trace_id

TRACE_HEADER = "X-Amzn-Trace-Id"
METRICS_PATH = "/metrics"
# Probes every few seconds from the load balancer and ECS: a line each only when they fail.
_PROBES = ("/healthz", "/readyz")
# Label values stay few whatever clients send: unknown methods and paths are lumped together.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_UNMATCHED = "unmatched"
# A request through both hops takes a few milliseconds; the upper buckets catch slow ones.
# (Not imported from the services' metrics module: that would list their metrics here.)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

log = logging.getLogger("wallet.requests")

REQUESTS = Counter(
    "wallet_http_requests_total",
    "HTTP requests answered by the gateway, by method, route template and status code "
    "(/metrics not counted).",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "wallet_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)

_trace_id: ContextVar[str | None] = ContextVar("wallet_trace_id", default=None)


def current_trace_id() -> str:
    """The trace id of the request being handled; outside a request, a new one."""
    return _trace_id.get() or new_trace_id()


class RequestObservability:
    """ASGI middleware: sets the request's trace id, echoes it in X-Amzn-Trace-Id, then
    counts, times and logs the request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_scrape(scope):
            await self.app(scope, receive, send)
            return
        received = dict(scope["headers"]).get(TRACE_HEADER.lower().encode("latin-1"))
        trace_id = accepted_trace_id(None if received is None else received.decode("latin-1"))
        # Not reset afterwards: the Exception handler runs outside this middleware and still
        # needs it, and each request has a context of its own anyway.
        _trace_id.set(trace_id)
        started = time.perf_counter()
        # What an exception escaping before any answer becomes, in the app's last handler.
        status = 500

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(TRACE_HEADER, trace_id)
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        finally:
            _observe(scope, status, time.perf_counter() - started, trace_id)


def _is_scrape(scope: Scope) -> bool:
    """A request for /metrics that came through no proxy: not counted, logged or traced."""
    return scope["path"] == METRICS_PATH and not came_through_a_proxy(Headers(scope=scope))


def _observe(scope: Scope, status: int, seconds: float, trace_id: str) -> None:
    method = scope["method"] if scope["method"] in _METHODS else "other"
    # The router leaves the matched route in the scope; its path is the template.
    route = getattr(scope.get("route"), "path", _UNMATCHED)
    if route == METRICS_PATH:  # through a proxy, where /metrics is an unknown path
        route = _UNMATCHED
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_DURATION.labels(method, route).observe(seconds)
    if scope["path"] in _PROBES and status < 400:
        return
    log.info(
        "request",
        extra={
            "method": scope["method"],
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "trace_id": trace_id,
        },
    )


def with_trace_header(
    handler: Callable[[Request, Exception], Awaitable[Response]],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An Exception handler whose answer carries the trace id too: Starlette runs that
    handler outside every middleware, so RequestObservability never sees its response."""

    async def handle(request: Request, error: Exception) -> Response:
        response = await handler(request, error)
        response.headers[TRACE_HEADER] = current_trace_id()
        return response

    return handle


def came_through_a_proxy(headers: Headers) -> bool:
    """Whether a proxy forwarded the request: it carries Forwarded (RFC 7239) or an
    X-Forwarded-* header. AWS's load balancer adds X-Forwarded-For, -Proto and -Port to
    every request; a scraper that reaches the task directly sends none of them."""
    names = {name.lower() for name in headers}
    return any(name == "forwarded" or name.startswith("x-forwarded-") for name in names)


async def metrics(request: Request) -> Response:
    """The gateway's metrics in Prometheus's text format, for scrapers that reach the task
    directly. Through a proxy it is the 404 of an unknown path: the load balancer's /metrics
    rule matches the raw path, and /%6Detrics is /metrics once the gateway has decoded it."""
    if came_through_a_proxy(request.headers):
        raise HTTPException(404)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
