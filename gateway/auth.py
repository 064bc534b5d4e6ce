"""Who may call the API: a bearer token's grant, checked against the wallet in the path, and
a per-client rate limit. Routes take `Caller` as a dependency."""

import asyncio
import hashlib
from dataclasses import dataclass

from fastapi import Request
from fastapi.security import HTTPBearer

from gateway.problems import BEARER_CHALLENGE, Problem
from gateway.rate_limit import RateLimiter
from gateway.schemas import WalletIdPath
from services.platform.auth.tokens import (
    AUTHORIZATION,
    Grant,
    InvalidToken,
    KeysUnavailable,
    TokenVerifier,
    bearer_token,
)

SEED_WALLET = "default"
_KEYS_RETRY_AFTER_SECONDS = "5"


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
        token = None
        grant: Grant | InvalidToken
        try:
            token = bearer_token(authorization)
            grant = await self._verify(token)
        except InvalidToken as error:
            grant = error
        except KeysUnavailable as error:
            raise Problem(
                503,
                "the keys that sign tokens cannot be fetched; retry",
                headers={"Retry-After": _KEYS_RETRY_AFTER_SECONDS},
            ) from error
        # Limited before refusing, so guessing tokens is as slow as using one.
        self._limiter.admit(_client_key(request, token, grant))
        if isinstance(grant, InvalidToken):
            raise _unauthenticated(grant, had_token=authorization is not None)
        if not grant.allows(wallet_id):
            raise Problem(
                403,
                f"the token does not allow the wallet {wallet_id!r}",
                headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="insufficient_scope"'},
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
    challenge = f'{BEARER_CHALLENGE}, error="invalid_token", error_description="{error}"'
    return Problem(
        401, str(error), headers={"WWW-Authenticate": challenge if had_token else BEARER_CHALLENGE}
    )


def _client_key(request: Request, token: str | None, grant: Grant | InvalidToken) -> str:
    """Whom a request counts against: the token's subject, else the token, else the
    client's address (uvicorn takes it from X-Forwarded-For behind the load balancer)."""
    if isinstance(grant, Grant):
        if grant.subject is not None:
            return f"sub:{grant.subject}"
        assert token is not None  # a grant came from it
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return _client_address(request)


def _client_address(request: Request) -> str:
    return f"addr:{request.client.host if request.client else 'unknown'}"


# Declares the scheme in the OpenAPI document; Gatekeeper does the checking.
bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A JWT whose `wallets` claim lists the wallets it may use (`*`: all). "
    "`wallet token --wallet W` mints one for `wallet dev`.",
)
API_PROBLEMS = (401, 403, 429)  # and 503 when the token keys cannot be fetched


async def _admit(request: Request, wallet_id: str) -> Caller:
    gatekeeper: Gatekeeper = request.app.state.gatekeeper
    return await gatekeeper.admit(request, wallet_id)


async def wallet_caller(request: Request, wallet_id: WalletIdPath) -> Caller:
    """The caller of a /v1/wallets/{wallet_id} route."""
    return await _admit(request, wallet_id)


async def seed_caller(request: Request) -> Caller:
    """The caller of a seed route, which acts on the wallet `default`."""
    return await _admit(request, SEED_WALLET)
