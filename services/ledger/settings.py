"""Settings from environment variables (prefix WALLET_, plus DATABASE_URL), so one build
runs locally and on AWS.

boto3 reads its own variables: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_DYNAMODB_STREAMS,
AWS_REGION, credentials.
"""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WALLET_")

    table_name: str = "wallet-ledger"
    aggregate_shards: int = Field(default=8, ge=1, le=1000)
    listen_host: str = "0.0.0.0"
    command_port: int = Field(default=50051, ge=1, le=65535)
    query_port: int = Field(default=50052, ge=1, le=65535)
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    # Where clients (the gateway, the CLI) find the gRPC services.
    command_address: str = "127.0.0.1:50051"
    query_address: str = "127.0.0.1:50052"
    gateway_deadline_seconds: float = Field(default=10.0, gt=0)
    grpc_workers: int = Field(default=64, ge=1)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    log_level: str = "INFO"
    # Unset: the local stack's embedded PostgreSQL in dev_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "WALLET_DATABASE_URL")
    )
    database_pool_size: int = Field(default=8, ge=1)
    dev_dir: Path = PROJECT_ROOT / ".wallet-dev"
    updater_interval_seconds: float = Field(default=0.5, gt=0)
    # Testing only: the updater SIGKILLs itself after writing rows, before committing.
    updater_kill_before_commit: bool = False
