"""Fixtures of the unit tests."""

import pytest

DATABASE_VARIABLES = (
    "DATABASE_URL",
    "WALLET_DATABASE_URL",
    "WALLET_DATABASE_HOST",
    "WALLET_DATABASE_PORT",
    "WALLET_DATABASE_NAME",
    "WALLET_DATABASE_USER",
    "WALLET_DATABASE_PASSWORD",
    "WALLET_DATABASE_IAM_AUTH",
)


@pytest.fixture
def no_database_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings see only the database variables the test sets itself."""
    for name in DATABASE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
