"""Only callers inside the deployment may use the gRPC services: each call carries the same
bearer token the gateway was given (metadata `authorization`), verified again here, and may
only touch the wallets that token allows."""

from collections.abc import Callable
from typing import Any

import grpc

from services.platform.auth.configured import load_verifier
from services.platform.auth.tokens import (
    AUTHORIZATION,
    InvalidToken,
    KeysUnavailable,
    TokenVerifier,
    bearer_token,
)
from services.platform.settings import AuthSettings

# Load balancer probes carry no token; reflection describes the public API and no data.
_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def bearer_metadata(token: str) -> tuple[tuple[str, str]]:
    """Call metadata that authenticates a client with `token`."""
    return ((AUTHORIZATION, f"Bearer {token}"),)


def auth_interceptors(settings: AuthSettings) -> list["AuthInterceptor"]:
    """The interceptor a service runs with: none when auth is disabled."""
    verifier = load_verifier(settings)
    return [] if verifier is None else [AuthInterceptor(verifier)]


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """UNAUTHENTICATED without a valid token, PERMISSION_DENIED for another wallet (or for
    a method whose request names no wallet: none is open to every token by accident)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], "grpc.RpcMethodHandler[Any, Any] | None"],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "grpc.RpcMethodHandler[Any, Any] | None":
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_OPEN):
            return handler
        if handler.unary_unary is None:
            # Only unary methods are guarded below; a streaming one stays closed until it is.
            return None
        behaviour = handler.unary_unary
        sent = dict(handler_call_details.invocation_metadata or ()).get(AUTHORIZATION)
        authorization = sent if isinstance(sent, str) else None  # bytes only for -bin keys

        def authorized(request: Any, context: grpc.ServicerContext) -> Any:
            # Verified here, on a worker thread: fetching a JWKS must not stall the server.
            try:
                grant = self._verifier.verify(bearer_token(authorization))
            except InvalidToken as error:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
            except KeysUnavailable:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the token keys are unavailable")
            wallet_id = getattr(request, "wallet_id", None)
            if not isinstance(wallet_id, str) or not grant.allows(wallet_id):
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, "the token does not allow this wallet"
                )
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            authorized,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
