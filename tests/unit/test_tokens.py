"""Bearer token verification: what is accepted, and every way a token is refused."""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.platform.auth.tokens import (
    JWKS_REFETCH_COOLDOWN_SECONDS,
    Grant,
    InvalidToken,
    KeysUnavailable,
    TokenVerifier,
    bearer_token,
    mint_token,
)
from tests.auth_support import JwksServer

SECRET = "unit-test-secret-0123456789abcdef0123456789"
ISSUER, AUDIENCE = "https://issuer.test/", "wallet-ledger"


def hs256_verifier() -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, hs256_secret=SECRET)


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "wallets": ["alice"],
        "sub": "client-1",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def b64(data: dict[str, Any]) -> str:
    text = json.dumps(data, default=lambda instant: int(instant.timestamp()))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def hmac_token(key: bytes, header: dict[str, str]) -> str:
    """An HS256 token made by hand: PyJWT rightly refuses to use a public key as a secret."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', **header})}.{b64(claims())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def test_a_minted_token_verifies_to_its_wallets_and_subject() -> None:
    token = mint_token(
        SECRET,
        wallets=["bob", "alice"],
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl=timedelta(hours=1),
        subject="me",
    )
    assert hs256_verifier().verify(token) == Grant(
        subject="me", wallets=frozenset({"alice", "bob"})
    )


def test_a_grant_allows_only_its_wallets_unless_star() -> None:
    grant = Grant(subject=None, wallets=frozenset({"alice"}))
    assert grant.allows("alice")
    assert not grant.allows("bob")
    assert not grant.allows("alice2")
    assert Grant(subject=None, wallets=frozenset({"*"})).allows("anyone")


@pytest.mark.parametrize(
    ("overrides", "key", "reason"),
    [
        ({"exp": -timedelta(minutes=5)}, SECRET, "expired"),
        ({"aud": "another-service"}, SECRET, "audience"),
        ({"iss": "https://elsewhere.test/"}, SECRET, "issuer"),
        ({"exp": None}, SECRET, "no exp claim"),
        ({"aud": None}, SECRET, "no aud claim"),
        ({"iss": None}, SECRET, "no iss claim"),
        ({}, "another-secret-0123456789abcdef0123456789", "signature"),
        ({"wallets": None}, SECRET, "wallets claim"),
        ({"wallets": "alice"}, SECRET, "wallets claim"),
        ({"wallets": ["alice", 7]}, SECRET, "wallets claim"),
    ],
)
def test_bad_tokens_are_refused_saying_why(
    overrides: dict[str, Any], key: str, reason: str
) -> None:
    # Built when the test runs: tokens made at collection could expire before it does.
    if isinstance(overrides.get("exp"), timedelta):
        overrides = {**overrides, "exp": datetime.now(UTC) + overrides["exp"]}
    token_claims = claims(**overrides)
    token = jwt.encode(token_claims, key, algorithm="HS256")
    with pytest.raises(InvalidToken, match=reason):
        hs256_verifier().verify(token)


def test_alg_none_is_refused() -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(InvalidToken, match="algorithm"):
        hs256_verifier().verify(unsigned)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "....", "\u00e9.\u00e9.\u00e9"])
def test_malformed_tokens_are_refused(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        hs256_verifier().verify(garbage)


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  abc ", "abc"), ("BEARER x", "x")],
)
def test_bearer_header_gives_its_token(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "abc"])
def test_other_authorization_headers_are_refused(header: str | None) -> None:
    with pytest.raises(InvalidToken):
        bearer_token(header)


def test_exactly_one_key_source_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            hs256_secret=SECRET,
            jwks_url=(tmp_path / "jwks.json").as_uri(),
        )


# --- JWKS (production): RS256 and ES256 keys from a key set, here a file: URL ---------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks_verifier(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> TokenVerifier:
    keys = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa-1"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1"},
    ]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=path.as_uri())


def test_rs256_and_es256_tokens_verify_against_the_jwks(
    jwks_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    rs = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert jwks_verifier.verify(rs).allows("alice")
    assert jwks_verifier.verify(es).allows("alice")
    assert not jwks_verifier.fetches_keys  # a file is read once, at start


def test_jwks_refuses_unknown_keys_hs256_and_key_confusion(
    jwks_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "rsa-1"})
    unknown_kid = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "rsa-9"})
    dev_token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "rsa-1"})
    # The classic confusion: HMAC keyed with the public key a verifier might hand it.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = hmac_token(public_pem, {"kid": "rsa-1"})
    refusals = {
        forged: "signature",
        unknown_kid: "signature",
        dev_token: "algorithm",
        confused: "algorithm",
    }
    for token, reason in refusals.items():
        with pytest.raises(InvalidToken, match=reason):
            jwks_verifier.verify(token)


# --- JWKS over HTTP(S): fetched, cached, refetched on rotation, and outages ------------------


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


class FakeClock:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rs256(key: rsa.RSAPrivateKey, kid: str) -> str:
    return jwt.encode(claims(), key, algorithm="RS256", headers={"kid": kid})


def test_keys_are_fetched_once_then_refetched_for_a_new_key_id(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve_keys(("one", rsa_key))
    clock = FakeClock()
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, clock=clock
    )
    assert verifier.fetches_keys
    for _ in range(3):
        assert verifier.verify(rs256(rsa_key, "one")).allows("alice")
    assert jwks_server.fetches == 1
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks_server.serve_keys(("one", rsa_key), ("two", rotated))
    # Within the cooldown an unknown key id is refused without asking the issuer again.
    with pytest.raises(InvalidToken):
        verifier.verify(rs256(rotated, "two"))
    assert jwks_server.fetches == 1
    clock.now += JWKS_REFETCH_COOLDOWN_SECONDS + 0.2
    assert verifier.verify(rs256(rotated, "two")).allows("alice")
    assert jwks_server.fetches == 2


def test_an_outage_of_the_key_set_is_not_an_invalid_token(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url)
    jwks_server.body = b"<html>maintenance</html>"
    with pytest.raises(KeysUnavailable):
        verifier.verify(rs256(rsa_key, "one"))
    jwks_server.stop()
    with pytest.raises(KeysUnavailable):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url).verify(
            rs256(rsa_key, "one")
        )


def test_cached_keys_keep_verifying_while_the_key_set_is_down(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve_keys(("one", rsa_key))
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url)
    verifier.verify(rs256(rsa_key, "one"))
    jwks_server.stop()
    assert verifier.verify(rs256(rsa_key, "one")).allows("alice")


def test_a_jwks_url_in_the_clear_is_refused_unless_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://idp.example/jwks")
