"""Tokens for tests: a fixed HS256 secret the services under test are configured with,
tokens signed with it, and gRPC channels that send one on every call."""

import http.server
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from services.platform.auth.tokens import ALL_WALLETS, mint_token
from services.platform.grpc_auth import bearer_metadata
from services.platform.settings import AuthSettings

TEST_SECRET = SecretStr("test-secret-of-at-least-thirty-two-bytes-for-hs256")
AUTH_ENV = {"WALLET_AUTH_HS256_SECRET": TEST_SECRET.get_secret_value()}
_DEFAULTS = AuthSettings(auth_hs256_secret=TEST_SECRET)


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


class JwksServer:
    """Serves a key set (or anything else) on a loopback port, counting fetches."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def serve_keys(self, *keys: tuple[str, rsa.RSAPrivateKey]) -> None:
        jwks = [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": kid}
            for kid, key in keys
        ]
        self.body = json.dumps({"keys": jwks}).encode()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
