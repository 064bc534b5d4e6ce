"""Authentication for the processes a benchmark starts: a new HS256 secret for each run, one
token for every wallet, and a rate limit the benchmark never reaches.

The limiter stays on, as deployed (its cost is part of what the gateway figures measure),
but at a limit far above any benchmark's load, so no call is refused for it.
"""

from dataclasses import dataclass
from datetime import timedelta

from services.platform.auth.tokens import ALL_WALLETS, mint_token, new_secret
from services.platform.grpc_auth import bearer_metadata
from services.platform.settings import AuthSettings

RATE_LIMIT = "1000000/second"
SUBJECT = "wallet-bench"
NOTE = (
    "Auth on, as deployed: the processes the benchmark starts verify a new HS256 secret of "
    "this run, and every call carries a bearer token for every wallet (HTTP Authorization "
    f"header, gRPC metadata); WALLET_RATE_LIMIT={RATE_LIMIT}, so a gateway's limiter runs "
    "but refuses nothing; no metrics ports (WALLET_*_METRICS_PORT=0)."
)


@dataclass(frozen=True)
class BenchAuth:
    secret: str
    token: str

    def env(self) -> dict[str, str]:
        """What the benchmark's children need to verify the token and never refuse a call
        for the rate; auth is on whatever the developer's environment says."""
        return {
            "WALLET_AUTH": "enabled",
            "WALLET_AUTH_HS256_SECRET": self.secret,
            "WALLET_RATE_LIMIT": RATE_LIMIT,
        }

    @property
    def metadata(self) -> tuple[tuple[str, str]]:
        """gRPC call metadata carrying the token."""
        return bearer_metadata(self.token)

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers carrying the token."""
        return {"Authorization": f"Bearer {self.token}"}


def new_bench_auth(ttl: timedelta = timedelta(hours=6)) -> BenchAuth:
    """A new secret and a token signed with it for every wallet, valid for `ttl`, from the
    issuer and for the audience the children's settings expect."""
    settings = AuthSettings()
    secret = new_secret()
    token = mint_token(
        secret,
        wallets=[ALL_WALLETS],
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        ttl=ttl,
        subject=SUBJECT,
    )
    return BenchAuth(secret, token)
