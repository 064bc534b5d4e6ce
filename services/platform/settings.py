"""Settings from environment variables (prefix WALLET_, plus DATABASE_URL), so one build
runs locally and on AWS.

Each process reads its own class (CommandSettings, QuerySettings, GatewaySettings,
UpdaterSettings, ...), composed from the parts below: a process neither reads nor validates
another's variables, and every part has the prefix WALLET_, so a variable's name does not
depend on the class that reads it (terraform/ecs.tf sets them by name).

The read model's PostgreSQL is DATABASE_URL, or else is built from WALLET_DATABASE_HOST,
_PORT, _NAME, _USER and _PASSWORD. On AWS `wallet migrate` signs in as the Aurora master
user, whose name and password come from its RDS-managed secret (ECS task `secrets`); the
query service and the updater sign in with WALLET_DATABASE_IAM_AUTH as their own roles,
with an IAM token per new connection and no password at all (adapters/database.py).

boto3 reads its own variables: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_DYNAMODB_STREAMS,
AWS_DEFAULT_REGION (botocore ignores AWS_REGION), credentials.
"""

from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import quote

from limits import RateLimitItem, RateLimitItemPerYear, parse_many
from limits.util import SEPARATORS, SINGLE_EXPR
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    PlainValidator,
    SecretStr,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# How long DynamoDB Streams may take to show an acknowledged write: a pass that found a
# shard quiet claims as_of this much before it listed the shards (services/updater/
# positions.py, pass_as_of). AWS documents stream records as written "in near-real time"
# and publishes no bound; 5 s is several times the usual sub-second delay, and costs a
# quiet table's as_of 5 s of age (a pass that reads into records newer than its start
# needs no allowance). DynamoDB Local shows a write in its stream by the time it
# acknowledges it: 0 is exact there.
STREAM_DELIVERY_ALLOWANCE_SECONDS = 5.0

# WALLET_RATE_LIMIT's value for no limit at all.
RATE_LIMIT_DISABLED = "disabled"


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# The names the logging module and uvicorn (lower-cased) both know, in any case.
LogLevel = Annotated[
    Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"], BeforeValidator(_upper)
]


_LONGEST_PERIOD = RateLimitItemPerYear.GRANULARITY


def parse_rate_limit(spec: str) -> tuple[RateLimitItem, ...]:
    """The limits of a WALLET_RATE_LIMIT ("100/second;2000/minute"), none for "disabled"."""
    if spec == RATE_LIMIT_DISABLED:
        return ()
    try:
        limits = tuple(parse_many(spec))
    except ValueError as error:
        raise ValueError(
            f"not limits like '100/second;2000/minute', nor {RATE_LIMIT_DISABLED!r}: {error}"
        ) from error
    # limits reads "0/second" as a limit that refuses every request, and "5/0 minutes" as
    # 5 per minute: typos, not settings (to turn limiting off, say so).
    for part in SEPARATORS.split(spec):
        match = SINGLE_EXPR.match(part)
        assert match is not None, "parse_many read every part"
        amount, _, periods, _ = match.groups()
        if int(amount) < 1 or (periods is not None and int(periods) < 1):
            raise ValueError(
                f"every limit must allow at least one request in a period of at least one "
                f"unit ({part.strip()!r}); to turn limiting off, use {RATE_LIMIT_DISABLED!r}"
            )
    # A longer period is a typo too, and one past a float's range made the limiter fail on
    # every request (500s).
    if any(limit.get_expiry() > _LONGEST_PERIOD.seconds for limit in limits):
        raise ValueError(f"every limit's period must be at most a year ({spec!r})")
    return limits


def _rate_limits(value: object) -> tuple[RateLimitItem, ...]:
    if isinstance(value, str):
        return parse_rate_limit(value)
    if isinstance(value, tuple) and all(isinstance(limit, RateLimitItem) for limit in value):
        return value
    raise ValueError("expected limits in `limits` notation or a tuple of RateLimitItem")


# Parsed once, from its text (never JSON): the limits, none when disabled.
RateLimits = Annotated[tuple[RateLimitItem, ...], NoDecode, PlainValidator(_rate_limits)]


class _WalletSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WALLET_")


# --- the parts -------------------------------------------------------------------------------


class LoggingSettings(_WalletSettings):
    log_level: LogLevel = "INFO"


class TableSettings(_WalletSettings):
    table_name: str = "wallet-ledger"


class ListenSettings(_WalletSettings):
    # The interface a process binds (its service's port and its metrics port).
    listen_host: str = "0.0.0.0"


class ServerSettings(ListenSettings):
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)


class GrpcServerSettings(ServerSettings):
    grpc_workers: int = Field(default=64, ge=1)
    # Requests are a few hundred bytes; larger ones are refused before they are parsed.
    grpc_max_receive_bytes: int = Field(default=64 * 1024, ge=1024)
    # Calls beyond this many in flight get RESOURCE_EXHAUSTED instead of queueing.
    grpc_max_concurrent_rpcs: int = Field(default=256, ge=1)


class AuthSettings(_WalletSettings):
    # Bearer JWTs at the gateway and in the gRPC services' metadata. Off only when set so.
    auth: Literal["enabled", "disabled"] = "enabled"
    auth_issuer: str = "wallet-dev"
    auth_audience: str = "wallet-ledger"
    # Exactly one key source: an HS256 secret (`wallet dev`) or a JWKS: an https: URL (cached,
    # refetched on rotation) or a file (a path or file: URL, read at start).
    auth_hs256_secret: SecretStr | None = Field(default=None, min_length=32)  # RFC 7518 §3.2
    auth_jwks_url: str | None = None


class TokenSigningSettings(AuthSettings):
    """What `wallet token` and the dev stack sign tokens with: the dev folder holds the
    local stack's secret."""

    dev_dir: Path = PROJECT_ROOT / ".wallet-dev"


class DatabaseSettings(_WalletSettings):
    """The read model's server; `wallet migrate` reads nothing else."""

    # Required by every process but `wallet dev`, which starts an embedded server in dev_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "WALLET_DATABASE_URL")
    )
    # Used when DATABASE_URL is unset and database_host is set.
    database_host: str | None = None
    database_port: int = Field(default=5432, ge=1, le=65535)
    database_name: str = "postgres"
    database_user: str | None = None
    database_password: SecretStr | None = None
    # RDS IAM database authentication: each new connection's password is a fresh token
    # signed with the task's AWS credentials, so nothing a rotation changes is held.
    database_iam_auth: bool = False

    @model_validator(mode="after")
    def _database_url_from_parts(self) -> Self:
        if self.database_iam_auth:
            if self.database_url is not None or self.database_host is None:
                raise ValueError(
                    "WALLET_DATABASE_IAM_AUTH takes the server from WALLET_DATABASE_HOST "
                    "and its companions, not from DATABASE_URL"
                )
            if self.database_password is not None:
                raise ValueError(
                    "WALLET_DATABASE_PASSWORD must be unset with WALLET_DATABASE_IAM_AUTH: "
                    "the password is a token made for each connection"
                )
        if self.database_url is None and self.database_host is not None:
            if not self.database_user:
                raise ValueError("WALLET_DATABASE_USER is required with WALLET_DATABASE_HOST")
            password = self.database_password.get_secret_value() if self.database_password else ""
            credentials = quote(self.database_user, safe="")
            if password:
                credentials += ":" + quote(password, safe="")
            self.database_url = (
                f"postgresql://{credentials}@{self.database_host}:{self.database_port}"
                f"/{quote(self.database_name, safe='')}"
            )
            # RDS accepts IAM tokens over TLS only. `require` encrypts without checking the
            # server's certificate: verify-full would need the RDS CA bundle in the image.
            if self.database_iam_auth:
                self.database_url += "?sslmode=require"
        return self


class ServiceAddresses(_WalletSettings):
    # Where clients (the gateway, the CLI) find the gRPC services.
    command_address: str = "127.0.0.1:50051"
    query_address: str = "127.0.0.1:50052"


# Each process's ports. Prometheus metrics ports of the processes without HTTP (the gateway
# serves /metrics on its own port); 0 turns one off.


class CommandPorts(_WalletSettings):
    command_port: int = Field(default=50051, ge=1, le=65535)
    command_metrics_port: int = Field(default=9101, ge=0, le=65535)


class QueryPorts(_WalletSettings):
    query_port: int = Field(default=50052, ge=1, le=65535)
    query_metrics_port: int = Field(default=9102, ge=0, le=65535)


class GatewayPort(_WalletSettings):
    gateway_port: int = Field(default=8080, ge=1, le=65535)


class UpdaterMetricsPort(_WalletSettings):
    # Served by `wallet update --follow` only.
    updater_metrics_port: int = Field(default=9103, ge=0, le=65535)


# --- the processes ---------------------------------------------------------------------------


class CommandSettings(
    TableSettings, GrpcServerSettings, AuthSettings, LoggingSettings, CommandPorts
):
    """`wallet serve command`."""

    aggregate_shards: int = Field(default=8, ge=1, le=1000)


class QuerySettings(
    DatabaseSettings, GrpcServerSettings, AuthSettings, LoggingSettings, QueryPorts
):
    """`wallet serve query`."""

    database_pool_size: int = Field(default=8, ge=1)


class GatewaySettings(ServerSettings, AuthSettings, LoggingSettings, ServiceAddresses, GatewayPort):
    """`wallet serve gateway`."""

    gateway_deadline_seconds: float = Field(default=10.0, gt=0)
    # How long the gateway keeps an idle HTTP connection open. It must outlast the idle
    # timeout of whatever reuses its connections (the AWS load balancer's is 60 s): a peer
    # that sends on a connection the gateway is just closing gets an error (from the load
    # balancer, a 502).
    gateway_keep_alive_seconds: int = Field(default=75, ge=1)
    # Per client, in `limits` notation ("100/second;2000/minute"), or "disabled".
    rate_limit: RateLimits = Field(default="100/second", validate_default=True)
    # Peers whose X-Forwarded-For the gateway believes (the client address it rate-limits);
    # on AWS the VPC's CIDR ranges. Never "*" behind a public load balancer: uvicorn then
    # takes the leftmost entry, which the client writes itself.
    trusted_proxies: str = "127.0.0.1"


class ReconcileSettings(TableSettings, DatabaseSettings):
    """`wallet reconcile`: the table and the read model."""


class UpdaterSettings(ReconcileSettings, ListenSettings, LoggingSettings, UpdaterMetricsPort):
    """`wallet update` (one pass, --follow, --rebuild): what reconcile reads, and more."""

    updater_interval_seconds: float = Field(default=0.5, gt=0)
    stream_delivery_allowance_seconds: float = Field(
        default=STREAM_DELIVERY_ALLOWANCE_SECONDS, ge=0
    )


class ClientSettings(ServiceAddresses, TokenSigningSettings):
    """`wallet record`, `wallet history` and `wallet token`."""


class DevStackSettings(
    TableSettings,
    DatabaseSettings,
    TokenSigningSettings,
    CommandPorts,
    QueryPorts,
    GatewayPort,
    UpdaterMetricsPort,
):
    """`wallet dev`: the ports it checks before starting every process, the table it
    creates, the database it migrates (embedded in dev_dir when unset), and the keys."""
