"""gRPC plumbing shared by the services: health checking, reflection, one log line and
metrics per call, and a graceful stop on SIGTERM or SIGINT."""

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.platform.metrics import CALL_DURATION, CALLS
from services.platform.trace_ids import TRACE_ID_METADATA, accepted_trace_id

log = logging.getLogger("wallet.calls")
_UNLOGGED = ("/grpc.health.v1.Health/",)


class CallLogInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Logs one structured line per unary call (method, wallet, request id, outcome,
    latency, the caller's trace id or a new one), counts and times it by method and status
    code, and turns unexpected exceptions into INTERNAL without their text."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], "grpc.RpcMethodHandler[Any, Any] | None"],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "grpc.RpcMethodHandler[Any, Any] | None":
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        # Health probes come every few seconds from load balancers: not worth a line each.
        if handler is None or handler.unary_unary is None or method.startswith(_UNLOGGED):
            return handler
        behaviour = handler.unary_unary
        metadata = dict(handler_call_details.invocation_metadata or ())
        trace_id = accepted_trace_id(_text(metadata.get(TRACE_ID_METADATA)))

        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            response = None
            try:
                response = behaviour(request, context)
                return response
            except Exception:
                # context.abort() raises too, with its code set; anything else is a bug,
                # logged here and answered without its internals (not as UNKNOWN + text).
                if context.code() is None:  # type: ignore[attr-defined]
                    log.exception(
                        "unexpected error", extra={"method": method, "trace_id": trace_id}
                    )
                    context.abort(grpc.StatusCode.INTERNAL, "internal error")
                raise
            finally:
                # grpc-stubs predates ServicerContext.code().
                code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
                seconds = time.perf_counter() - started
                CALLS.labels(method, code.name).inc()
                CALL_DURATION.labels(method).observe(seconds)
                log.info(
                    "call",
                    extra={
                        "method": method,
                        "wallet_id": getattr(request, "wallet_id", None),
                        "request_id": getattr(request, "request_id", None),
                        "outcome": _outcome(code, response),
                        "latency_ms": round(seconds * 1000, 3),
                        "trace_id": trace_id,
                    },
                )

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _text(value: str | bytes | None) -> str | None:
    """A metadata value as text: binary (-bin) keys arrive as bytes."""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _outcome(code: grpc.StatusCode, response: Any) -> str:
    if code != grpc.StatusCode.OK:
        return str(code.name)
    return "replayed" if getattr(response, "replayed", False) else "ok"


class GrpcService:
    """A gRPC server with health checking and reflection for the named services."""

    def __init__(
        self,
        *,
        service_names: list[str],
        add_servicers: Callable[[grpc.Server], None],
        address: str,
        workers: int,
        max_receive_bytes: int,
        max_concurrent_rpcs: int,
        interceptors: Sequence[grpc.ServerInterceptor] = (),  # type: ignore[type-arg]
    ) -> None:
        self._executor = futures.ThreadPoolExecutor(max_workers=workers)
        # The call log is outermost, so it also logs the calls the others refuse.
        self.server = grpc.server(
            self._executor,
            interceptors=[CallLogInterceptor(), *interceptors],
            options=[
                ("grpc.max_receive_message_length", max_receive_bytes),
                # grpcio sets SO_REUSEPORT by default: a second service started on a taken
                # port would bind it too and take a share of the calls, old and new code
                # serving side by side; without it the second one fails to start.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        add_servicers(self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self._service_names = service_names
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as error:  # grpcio's way of saying bind() failed
            raise OSError(f"cannot listen on {address}: the port is in use") from error

    def start(self) -> None:
        self.server.start()
        self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Refuses new calls, lets in-flight ones finish within `grace` seconds."""
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.server.stop(grace).wait()
        self._executor.shutdown(wait=False)

    def _set_health(self, status: int) -> None:
        for name in ["", *self._service_names]:
            self.health.set(name, status)

    def serve_until_signalled(self, grace: float) -> None:
        """Starts, then blocks until SIGTERM or SIGINT and stops gracefully."""
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        self.start()
        log.info("listening", extra={"port": self.port, "services": self._service_names})
        stopping.wait()
        log.info("stopping", extra={"grace_seconds": grace})
        self.stop(grace)
        log.info("stopped")
