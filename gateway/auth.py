"""Who may call the API: a bearer token's grant, checked against the wallet in the path, and
a per-client rate limit. Routes take `Caller` as a dependency."""

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Request
from fastapi.security import HTTPBearer

from gateway.problems import Problem
from gateway.rate_limit import RateLimiter
from services.auth.tokens import Grant, InvalidToken, TokenVerifier, bearer_token
from services.ledger.domain.ids import WALLET_ID_PATTERN
from services.ledger.grpc_auth import AUTHORIZATION

_REALM = 'Bearer realm="wallet-ledger"'
SEED_WALLET = "default"
WalletIdPath = Annotated[str, Path(pattern=f"^{WALLET_ID_PATTERN.pattern}$", examples=["alice"])]


@dataclass(frozen=True)
class Caller:
    """An admitted request: the gRPC metadata that tells the services who is calling."""

    metadata: tuple[tuple[str, str], ...]


class Gatekeeper:
    """Authenticates, rate-limits and authorizes each API request."""

    def __init__(self, verifier: TokenVerifier | None, limiter: RateLimiter) -> None:
        self._verifier = verifier  # None: auth disabled
        self._limiter = limiter

    async def admit(self, request: Request, wallet_id: str) -> Caller:
        if self._verifier is None:
            self._limiter.admit(_client_address(request))
            return Caller(metadata=())
        authorization = request.headers.get(AUTHORIZATION)
        try:
            grant: Grant | InvalidToken = await self._verify(bearer_token(authorization))
        except InvalidToken as error:
            grant = error
        # Limited before refusing, so guessing tokens is as slow as using one.
        self._limiter.admit(_client_key(request, authorization, grant))
        if isinstance(grant, InvalidToken):
            raise _unauthenticated(grant, had_token=authorization is not None)
        if not grant.allows(wallet_id):
            raise Problem(
                403,
                f"the token does not allow the wallet {wallet_id!r}",
                headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope"'},
            )
        assert authorization is not None  # a grant came from it
        return Caller(metadata=((AUTHORIZATION, authorization),))

    async def _verify(self, token: str) -> Grant:
        assert self._verifier is not None
        if self._verifier.fetches_keys:  # may wait on the JWKS URL: not on the event loop
            return await asyncio.to_thread(self._verifier.verify, token)
        return self._verifier.verify(token)


def _unauthenticated(error: InvalidToken, *, had_token: bool) -> Problem:
    # RFC 6750 §3: no error code when the request carried no credentials at all.
    challenge = f'{_REALM}, error="invalid_token", error_description="{error}"'
    return Problem(
        401, str(error), headers={"WWW-Authenticate": challenge if had_token else _REALM}
    )


def _client_key(request: Request, authorization: str | None, grant: Grant | InvalidToken) -> str:
    """Whom a request counts against: the token's subject, else the token, else the
    client's address (uvicorn takes it from X-Forwarded-For behind the load balancer)."""
    if isinstance(grant, Grant):
        if grant.subject is not None:
            return f"sub:{grant.subject}"
        assert authorization is not None
        return "token:" + hashlib.sha256(authorization.encode()).hexdigest()[:32]
    return _client_address(request)


def _client_address(request: Request) -> str:
    return f"addr:{request.client.host if request.client else 'unknown'}"


# Declares the scheme in the OpenAPI document; Gatekeeper does the checking.
bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A JWT whose `wallets` claim lists the wallets it may use (`*`: all). "
    "`wallet token --wallet W` mints one for `wallet dev`.",
)
API_PROBLEMS = (401, 403, 429)


async def _admit(request: Request, wallet_id: str) -> Caller:
    gatekeeper: Gatekeeper = request.app.state.gatekeeper
    return await gatekeeper.admit(request, wallet_id)


async def wallet_caller(request: Request, wallet_id: WalletIdPath) -> Caller:
    """The caller of a /v1/wallets/{wallet_id} route."""
    return await _admit(request, wallet_id)


async def seed_caller(request: Request) -> Caller:
    """The caller of a seed route, which acts on the wallet `default`."""
    return await _admit(request, SEED_WALLET)
