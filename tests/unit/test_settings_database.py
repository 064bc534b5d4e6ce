"""The read model's URL: DATABASE_URL, or built from WALLET_DATABASE_HOST/PORT/NAME/USER/PASSWORD
(what the ECS tasks get: the user name and password come from the Aurora secret's JSON keys)."""

import pytest
from sqlalchemy.engine import make_url

from services.ledger.adapters.database import sqlalchemy_url
from services.platform.settings import DatabaseSettings

pytestmark = pytest.mark.usefixtures("no_database_environment")


def test_no_database_settings_leave_the_url_unset() -> None:
    assert DatabaseSettings().database_url is None


def test_url_is_built_from_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLET_DATABASE_HOST", "db.cluster-x.eu-west-1.rds.amazonaws.com")
    monkeypatch.setenv("WALLET_DATABASE_PORT", "5433")
    monkeypatch.setenv("WALLET_DATABASE_NAME", "wallet")
    monkeypatch.setenv("WALLET_DATABASE_USER", "wallet_admin")
    monkeypatch.setenv("WALLET_DATABASE_PASSWORD", "secret")
    assert DatabaseSettings().database_url == (
        "postgresql://wallet_admin:secret@db.cluster-x.eu-west-1.rds.amazonaws.com:5433/wallet"
    )


def test_port_and_name_have_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLET_DATABASE_HOST", "db")
    monkeypatch.setenv("WALLET_DATABASE_USER", "postgres")
    assert DatabaseSettings().database_url == "postgresql://postgres@db:5432/postgres"


@pytest.mark.parametrize(
    "password", ["p@ss:w/rd", "100%#?&=", "quote\"'`", "space and\ttab", "ünïcödé", "+-*!$^()[]{}"]
)
def test_any_password_survives_the_url(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    """Generated passwords hold punctuation; the URL must give them back unchanged, also
    after the psycopg driver name is put in."""
    monkeypatch.setenv("WALLET_DATABASE_HOST", "db")
    monkeypatch.setenv("WALLET_DATABASE_USER", "wallet@admin")
    monkeypatch.setenv("WALLET_DATABASE_PASSWORD", password)
    url = DatabaseSettings().database_url
    assert url is not None
    for parsed in (make_url(url), make_url(sqlalchemy_url(url))):
        assert parsed.username == "wallet@admin"
        assert parsed.password == password
        assert (parsed.host, parsed.port, parsed.database) == ("db", 5432, "postgres")


def test_database_url_wins_over_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@elsewhere/app")
    monkeypatch.setenv("WALLET_DATABASE_HOST", "db")
    monkeypatch.setenv("WALLET_DATABASE_USER", "postgres")
    assert DatabaseSettings().database_url == "postgresql://app@elsewhere/app"


def test_host_without_user_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLET_DATABASE_HOST", "db")
    with pytest.raises(ValueError, match="WALLET_DATABASE_USER"):
        DatabaseSettings()
