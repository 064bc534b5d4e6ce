"""The token verifier a process runs with, from its settings, and the dev stack's secret."""

import logging
import os
from datetime import timedelta
from pathlib import Path

import jwt

from services.platform.auth.tokens import TokenVerifier, mint_token, new_secret
from services.platform.settings import AuthSettings, TokenSigningSettings

log = logging.getLogger("wallet.auth")
DEV_SECRET_FILE = "auth-secret"  # noqa: S105 (the file's name, not its content)


class AuthNotConfigured(Exception):
    pass


def load_verifier(settings: AuthSettings) -> TokenVerifier | None:
    """The verifier, or None when auth is disabled (which is logged as a warning)."""
    if settings.auth == "disabled":
        log.warning(
            "authentication is disabled (WALLET_AUTH=disabled): every caller may use every "
            "wallet; never run like this where untrusted clients can reach the service"
        )
        return None
    secret = settings.auth_hs256_secret
    if (secret is None) == (settings.auth_jwks_url is None):
        raise AuthNotConfigured(
            "set exactly one of WALLET_AUTH_JWKS_URL (production) and "
            "WALLET_AUTH_HS256_SECRET (development), or WALLET_AUTH=disabled"
        )
    try:
        return TokenVerifier(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            hs256_secret=None if secret is None else secret.get_secret_value(),
            jwks_url=settings.auth_jwks_url,
        )
    except (OSError, jwt.PyJWKSetError) as error:
        raise AuthNotConfigured(f"cannot read the key set WALLET_AUTH_JWKS_URL: {error}") from error


def dev_secret_path(dev_dir: Path) -> Path:
    return dev_dir / DEV_SECRET_FILE


def ensure_dev_secret(dev_dir: Path) -> str:
    """The dev stack's HS256 secret, created on first use and kept with its data, so tokens
    minted by `wallet token` stay valid across restarts of `wallet dev`."""
    path = dev_secret_path(dev_dir)
    if not path.exists():
        dev_dir.mkdir(parents=True, exist_ok=True)
        # Readable by its owner only; O_EXCL so two first starts cannot write two secrets.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(descriptor, "w") as file:
            file.write(new_secret())
    return path.read_text().strip()


def signing_secret(settings: TokenSigningSettings) -> str | None:
    """The secret `wallet token` signs with: WALLET_AUTH_HS256_SECRET, else the dev stack's;
    none where tokens come from a JWKS (the services would refuse HS256 tokens)."""
    if settings.auth_jwks_url is not None:
        return None
    if settings.auth_hs256_secret is not None:
        return settings.auth_hs256_secret.get_secret_value()
    path = dev_secret_path(settings.dev_dir)
    return path.read_text().strip() if path.exists() else None


def dev_token(
    settings: TokenSigningSettings, wallets: list[str], ttl: timedelta, subject: str | None = None
) -> str | None:
    """A token signed with `signing_secret`, or None when there is no secret to sign with."""
    secret = signing_secret(settings)
    if secret is None:
        return None
    return mint_token(
        secret,
        wallets=wallets,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        ttl=ttl,
        subject=subject,
    )
