"""Settings from environment variables (prefix WALLET_), so one build runs locally and on AWS.

boto3 reads its own variables: AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION, credentials.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WALLET_")

    table_name: str = "wallet-ledger"
    aggregate_shards: int = Field(default=8, ge=1, le=1000)
    listen_host: str = "0.0.0.0"
    command_port: int = Field(default=50051, ge=1, le=65535)
    query_port: int = Field(default=50052, ge=1, le=65535)
    grpc_workers: int = Field(default=64, ge=1)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    log_level: str = "INFO"
