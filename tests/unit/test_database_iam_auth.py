"""WALLET_DATABASE_IAM_AUTH: the URL it builds (TLS, no password), the settings it refuses,
and the token the connection hook signs (real botocore signing, no AWS call). That each new
connection gets a token of its own is tests/integration/test_database_roles.py's."""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import NoRegionError
from sqlalchemy.engine import make_url

from services.ledger.adapters.database import RdsIamToken, create_database_engine
from services.platform.settings import DatabaseSettings

pytestmark = pytest.mark.usefixtures("no_database_environment")
HOST = "wallet-read-model.cluster-ro-abc.eu-west-1.rds.amazonaws.com"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region: signing needs both, and sends nothing."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEWALLET")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


def _iam_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLET_DATABASE_IAM_AUTH", "true")
    monkeypatch.setenv("WALLET_DATABASE_HOST", HOST)
    monkeypatch.setenv("WALLET_DATABASE_NAME", "wallet")
    monkeypatch.setenv("WALLET_DATABASE_USER", "wallet_query")


def test_iam_auth_is_off_by_default() -> None:
    assert DatabaseSettings().database_iam_auth is False


def test_iam_auth_builds_a_url_with_tls_and_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    _iam_settings(monkeypatch)
    url = DatabaseSettings().database_url
    assert url == f"postgresql://wallet_query@{HOST}:5432/wallet?sslmode=require"
    parsed = make_url(url)
    assert parsed.password is None
    assert parsed.query == {"sslmode": "require"}


def test_iam_auth_refuses_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    _iam_settings(monkeypatch)
    monkeypatch.setenv("WALLET_DATABASE_PASSWORD", "left-over")
    with pytest.raises(ValueError, match="WALLET_DATABASE_PASSWORD must be unset"):
        DatabaseSettings()


@pytest.mark.parametrize(
    "variables",
    [
        {"DATABASE_URL": "postgresql://wallet_query@elsewhere/wallet"},
        {"WALLET_DATABASE_HOST": ""},
    ],
    ids=["with DATABASE_URL", "without a host"],
)
def test_iam_auth_takes_the_server_from_the_parts(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    _iam_settings(monkeypatch)
    for name, value in variables.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name)
    with pytest.raises(ValueError, match="WALLET_DATABASE_HOST"):
        DatabaseSettings()


def test_iam_auth_still_needs_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    _iam_settings(monkeypatch)
    monkeypatch.delenv("WALLET_DATABASE_USER")
    with pytest.raises(ValueError, match="WALLET_DATABASE_USER"):
        DatabaseSettings()


@pytest.mark.usefixtures("aws_credentials")
def test_the_hook_signs_a_token_for_the_connection_it_is_making() -> None:
    params: dict[str, object] = {"host": HOST, "port": 5433, "user": "wallet_updater"}
    before = datetime.now(UTC).replace(microsecond=0)

    RdsIamToken()(None, None, [], params)

    token = params["password"]
    assert isinstance(token, str)
    # An RDS IAM token is a presigned rds-db:connect request for host:port and the user.
    signed = urlsplit(f"https://{token}")
    assert (signed.hostname, signed.port) == (HOST, 5433)
    query = {name: values[0] for name, values in parse_qs(signed.query).items()}
    assert query["Action"] == "connect"
    assert query["DBUser"] == "wallet_updater"
    assert query["X-Amz-Credential"].endswith("/eu-west-1/rds-db/aws4_request")
    assert query["X-Amz-Expires"] == "900"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert signed_at >= before


@pytest.mark.usefixtures("aws_credentials")
def test_the_hook_defaults_to_the_postgresql_port() -> None:
    params: dict[str, object] = {"host": HOST, "user": "wallet_query"}
    RdsIamToken()(None, None, [], params)
    assert str(params["password"]).startswith(f"{HOST}:5432/?")


def test_iam_auth_needs_a_region_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task without AWS_DEFAULT_REGION stops when it builds its engine, not at its first
    connection."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(NoRegionError):
        create_database_engine("postgresql://wallet_query@db/wallet", iam_auth=True)
