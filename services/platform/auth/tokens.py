"""Bearer tokens: which wallets a JWT lets its holder use, and minting dev tokens.

A token must be signed with the configured key (HS256 with a shared secret, or RS256/ES256
with a key from a JWKS), unexpired, from the configured issuer, for the configured audience,
and carry a `wallets` claim: a list of wallet ids, where "*" stands for every wallet.
"""

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jwt

AUTHORIZATION = "authorization"  # the HTTP header, and the gRPC metadata key
ALL_WALLETS = "*"
DEV_ALGORITHM = "HS256"
JWKS_ALGORITHMS = ("RS256", "ES256")
# Clocks of the issuer and of our tasks may disagree by a little.
_LEEWAY = timedelta(seconds=30)
_JWKS_FETCH_TIMEOUT_SECONDS = 5.0
# Known keys are trusted this long without refetching, so an identity provider outage does
# not stop verification. A token naming an unknown key id refetches (rotation), at most once
# per cooldown, so made-up key ids cannot hammer the identity provider.
_JWKS_CACHE_SECONDS = 3600
JWKS_REFETCH_COOLDOWN_SECONDS = 5.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not for us; the text says which."""


class KeysUnavailable(Exception):
    """The JWKS could not be fetched or read: the token may be fine; retry later."""


@dataclass(frozen=True)
class Grant:
    """What a verified token allows: its subject (if any) and the wallets it may use."""

    subject: str | None
    wallets: frozenset[str]

    def allows(self, wallet_id: str) -> bool:
        return ALL_WALLETS in self.wallets or wallet_id in self.wallets


class TokenVerifier:
    """Checks signature, exp, iss, aud and the wallets claim of a bearer token."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        hs256_secret: str | None = None,
        jwks_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` (seconds, monotonic) times the refetch cooldown of a JWKS URL; tests
        pass one they advance themselves."""
        if (hs256_secret is None) == (jwks_url is None):
            raise ValueError("configure exactly one of an HS256 secret and a JWKS URL")
        self._issuer = issuer
        self._audience = audience
        self._secret = hs256_secret
        self._jwks_client: _JwksClient | None = None
        self._jwk_set: jwt.PyJWKSet | None = None
        if jwks_url is not None and urlsplit(jwks_url).scheme in ("http", "https"):
            if not _https_or_loopback(jwks_url):
                # Keys fetched in the clear could be swapped for an attacker's.
                raise ValueError(f"the JWKS URL must be https: {jwks_url}")
            self._jwks_client = _JwksClient(jwks_url, clock)
        elif jwks_url is not None:
            # A file (file: URL or path) is read once: rotate keys by restarting the tasks.
            is_url = jwks_url.startswith("file:")
            path = url2pathname(urlsplit(jwks_url).path) if is_url else jwks_url
            self._jwk_set = jwt.PyJWKSet.from_json(Path(path).read_text())

    @property
    def fetches_keys(self) -> bool:
        """Whether verifying may block on the network (fetching the JWKS)."""
        return self._jwks_client is not None

    def verify(self, token: str) -> Grant:
        try:
            key: Any
            algorithms: Iterable[str] = JWKS_ALGORITHMS
            if self._jwks_client is not None:
                key = _fetched_key(self._jwks_client, token)
            elif self._jwk_set is not None:
                key = _key_in_set(self._jwk_set, token)
            else:
                key, algorithms = self._secret, (DEV_ALGORITHM,)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=_LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(_reason(error)) from error
        return Grant(subject=_subject(claims), wallets=_wallets(claims))


class _JwksClient(jwt.PyJWKClient):
    """PyJWKClient (the fetch, the cached key set) with its refetch cooldown on `clock`:
    PyJWKClient times its own with time.monotonic, which no test can advance. The rule is
    PyJWKClient's: every successful fetch starts the cooldown, and within it a key id not in
    the cached set is refused without fetching."""

    def __init__(self, url: str, clock: Callable[[], float]) -> None:
        super().__init__(
            url,
            timeout=_JWKS_FETCH_TIMEOUT_SECONDS,
            lifespan=_JWKS_CACHE_SECONDS,
            cooldown_duration=0,  # PyJWKClient's own, unused: get_signing_key keeps ours
        )
        self._cooldown_clock = clock
        self._cooldown_lock = threading.Lock()
        self._fetched_at: float | None = None

    def fetch_data(self) -> Any:
        data = super().fetch_data()  # raises unless the fetch succeeded
        self._fetched_at = self._cooldown_clock()
        return data

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        with self._cooldown_lock:
            key = self.match_kid(self.get_signing_keys(), kid)
            cooling_down = (
                self._fetched_at is not None
                and self._cooldown_clock() - self._fetched_at < JWKS_REFETCH_COOLDOWN_SECONDS
            )
            if key is None and not cooling_down:
                key = self.match_kid(self.get_signing_keys(refresh=True), kid)
            if key is None:
                raise jwt.PyJWKClientError(f'Unable to find a signing key that matches: "{kid}"')
            return key


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or parts.hostname in _LOOPBACK


def _fetched_key(jwks: jwt.PyJWKClient, token: str) -> jwt.PyJWK:
    """The token's key from the JWKS URL (cached); KeysUnavailable when the key set cannot
    be fetched or is not a key set, which says nothing about the token."""
    try:
        return jwks.get_signing_key_from_jwt(token)
    except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as error:
        raise KeysUnavailable(str(error)) from error
    except jwt.PyJWTError:
        raise
    except ValueError as error:  # a response that is not JSON (e.g. an HTML error page)
        raise KeysUnavailable(f"the JWKS is not JSON: {error}") from error


def _key_in_set(key_set: jwt.PyJWKSet, token: str) -> jwt.PyJWK:
    """The signing key the token's `kid` names (PyJWKClient's rule, for a key set file)."""
    key_id = jwt.get_unverified_header(token).get("kid")
    for key in key_set.keys:
        if key.key_id == key_id and key.public_key_use in ("sig", None):
            return key
    raise jwt.PyJWKClientError("no key in the key set matches the token's kid")


def _reason(error: jwt.PyJWTError) -> str:
    """A short, safe description for the WWW-Authenticate header and the problem body."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the token is not for this audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the token is from another issuer"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no {error.claim} claim"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "the token's algorithm is not accepted"
    if isinstance(error, jwt.InvalidSignatureError | jwt.PyJWKClientError):
        return "the token's signature does not verify"
    return "the token is malformed"


def _subject(claims: dict[str, Any]) -> str | None:
    subject = claims.get("sub")
    return subject if isinstance(subject, str) and subject else None


def _wallets(claims: dict[str, Any]) -> frozenset[str]:
    wallets = claims.get("wallets")
    if not isinstance(wallets, list) or not all(isinstance(w, str) for w in wallets):
        raise InvalidToken("the token's wallets claim must be a list of wallet ids")
    return frozenset(wallets)


def mint_token(
    secret: str,
    *,
    wallets: Iterable[str],
    issuer: str,
    audience: str,
    ttl: timedelta,
    subject: str | None = None,
    now: datetime | None = None,
) -> str:
    """An HS256 token for `wallets` (for `wallet dev` and tests; production tokens come
    from the identity provider behind the JWKS)."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl,
        "wallets": sorted(set(wallets)),
    }
    if subject is not None:
        claims["sub"] = subject
    return jwt.encode(claims, secret, algorithm=DEV_ALGORITHM)


def new_secret() -> str:
    """A random HS256 secret: 256 bits, as RFC 7518 asks for HS256."""
    return secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (or gRPC metadata) value."""
    if not authorization:
        raise InvalidToken("no bearer token: send Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("the Authorization header must be Bearer <token>")
    return token.strip()
