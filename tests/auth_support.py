"""Tokens for tests: a fixed HS256 secret the services under test are configured with,
tokens signed with it, and gRPC channels that send one on every call."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
from pydantic import SecretStr

from services.auth.tokens import ALL_WALLETS, mint_token
from services.ledger.grpc_auth import bearer_metadata
from services.ledger.settings import Settings

TEST_SECRET = SecretStr("test-secret-of-at-least-thirty-two-bytes-for-hs256")
AUTH_ENV = {"WALLET_AUTH_HS256_SECRET": TEST_SECRET.get_secret_value()}
_DEFAULTS = Settings(auth_hs256_secret=TEST_SECRET)


def token_for(
    *wallets: str,
    ttl: timedelta = timedelta(hours=1),
    subject: str | None = "test-client",
    secret: str = TEST_SECRET.get_secret_value(),
    issuer: str = _DEFAULTS.auth_issuer,
    audience: str = _DEFAULTS.auth_audience,
) -> str:
    """A token the services under test accept (unless an argument says otherwise); for
    every wallet when none is named."""
    return mint_token(
        secret,
        wallets=wallets or (ALL_WALLETS,),
        issuer=issuer,
        audience=audience,
        ttl=ttl,
        subject=subject,
    )


def bearer_header(token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or token_for()}"}


class _BearerInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        details = client_call_details._replace(  # type: ignore[attr-defined]
            metadata=[*(client_call_details.metadata or ()), *self._metadata]
        )
        return continuation(details, request)


def authenticated_channel(address: str, token: str | None = None) -> grpc.Channel:
    """An insecure channel to `address` whose calls carry `token` (default: all wallets)."""
    return grpc.intercept_channel(
        grpc.insecure_channel(address), _BearerInterceptor(token or token_for())
    )
