"""Each process's settings class: it reads today's variables under today's names, holds
typed values (the rate limit parsed once, the log level one of logging's), refuses what does
not parse as the `wallet` command has always reported it, and carries no other process's
fields, so it neither reads nor validates them."""

import inspect
import os
from pathlib import Path
from typing import Any

import pytest
from limits import parse_many
from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from services.platform.settings import (
    ClientSettings,
    CommandSettings,
    DatabaseSettings,
    DevStackSettings,
    GatewaySettings,
    QuerySettings,
    ReconcileSettings,
    TableSettings,
    UpdaterSettings,
)
from wallet_cli.main import main

# Every settings class an entry point of the `wallet` command reads.
PROCESS_CLASSES: list[type[BaseSettings]] = [
    CommandSettings,
    QuerySettings,
    GatewaySettings,
    UpdaterSettings,
    ReconcileSettings,
    DatabaseSettings,  # `wallet migrate`
    TableSettings,  # `wallet create-table`
    ClientSettings,
    DevStackSettings,
]

SECRET = "a-secret-of-at-least-thirty-two-bytes-for-hs256"
# Each variable the processes have read so far, set to a value other than its default, and
# the value a class that reads it must hold.
VARIABLES: dict[str, tuple[str, str, Any]] = {
    "WALLET_TABLE_NAME": ("table_name", "ledger-2", "ledger-2"),
    "WALLET_AGGREGATE_SHARDS": ("aggregate_shards", "3", 3),
    "WALLET_LISTEN_HOST": ("listen_host", "127.0.0.2", "127.0.0.2"),
    "WALLET_COMMAND_PORT": ("command_port", "6001", 6001),
    "WALLET_QUERY_PORT": ("query_port", "6002", 6002),
    "WALLET_GATEWAY_PORT": ("gateway_port", "6003", 6003),
    "WALLET_COMMAND_ADDRESS": ("command_address", "command:1", "command:1"),
    "WALLET_QUERY_ADDRESS": ("query_address", "query:2", "query:2"),
    "WALLET_GATEWAY_DEADLINE_SECONDS": ("gateway_deadline_seconds", "2.5", 2.5),
    "WALLET_GATEWAY_KEEP_ALIVE_SECONDS": ("gateway_keep_alive_seconds", "90", 90),
    "WALLET_GRPC_WORKERS": ("grpc_workers", "5", 5),
    "WALLET_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", "3", 3.0),
    "WALLET_LOG_LEVEL": ("log_level", "warning", "WARNING"),
    "WALLET_AUTH": ("auth", "disabled", "disabled"),
    "WALLET_AUTH_ISSUER": ("auth_issuer", "issuer-2", "issuer-2"),
    "WALLET_AUTH_AUDIENCE": ("auth_audience", "audience-2", "audience-2"),
    "WALLET_AUTH_HS256_SECRET": ("auth_hs256_secret", SECRET, SecretStr(SECRET)),
    "WALLET_AUTH_JWKS_URL": ("auth_jwks_url", "https://idp.test/jwks", "https://idp.test/jwks"),
    "WALLET_RATE_LIMIT": (
        "rate_limit",
        "7/second;70/minute",
        tuple(parse_many("7/second;70/minute")),
    ),
    "WALLET_TRUSTED_PROXIES": ("trusted_proxies", "10.0.0.0/8", "10.0.0.0/8"),
    "WALLET_GRPC_MAX_RECEIVE_BYTES": ("grpc_max_receive_bytes", "2048", 2048),
    "WALLET_GRPC_MAX_CONCURRENT_RPCS": ("grpc_max_concurrent_rpcs", "9", 9),
    "WALLET_COMMAND_METRICS_PORT": ("command_metrics_port", "7001", 7001),
    "WALLET_QUERY_METRICS_PORT": ("query_metrics_port", "7002", 7002),
    "WALLET_UPDATER_METRICS_PORT": ("updater_metrics_port", "7003", 7003),
    "WALLET_DATABASE_HOST": ("database_host", "db", "db"),
    "WALLET_DATABASE_PORT": ("database_port", "5433", 5433),
    "WALLET_DATABASE_NAME": ("database_name", "wallet", "wallet"),
    "WALLET_DATABASE_USER": ("database_user", "app", "app"),
    "WALLET_DATABASE_PASSWORD": ("database_password", "pw", SecretStr("pw")),
    "WALLET_DATABASE_IAM_AUTH": ("database_iam_auth", "false", False),
    "WALLET_DATABASE_POOL_SIZE": ("database_pool_size", "4", 4),
    "WALLET_DEV_DIR": ("dev_dir", "/tmp/wallet-dev-2", Path("/tmp/wallet-dev-2")),
    "WALLET_UPDATER_INTERVAL_SECONDS": ("updater_interval_seconds", "1.5", 1.5),
    "WALLET_STREAM_DELIVERY_ALLOWANCE_SECONDS": ("stream_delivery_allowance_seconds", "0", 0.0),
}
# The value each field must hold; database_url is built from the parts above (DATABASE_URL,
# its variable, would win over them).
EXPECTED = {field: value for field, _, value in VARIABLES.values()} | {
    "database_url": "postgresql://app:pw@db:5433/wallet"
}


@pytest.fixture
def no_wallet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WALLET_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def todays_variables(no_wallet_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (_, text, _) in VARIABLES.items():
        monkeypatch.setenv(name, text)


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _variables(settings: type[BaseSettings]) -> set[str]:
    names = set()
    for field, info in settings.model_fields.items():
        if isinstance(info.validation_alias, AliasChoices):
            names |= {str(choice) for choice in info.validation_alias.choices}
        else:
            names.add(f"{settings.model_config['env_prefix']}{field}".upper())
    return names


def test_the_classes_read_todays_variables_under_todays_names() -> None:
    """Terraform and the tests set them by name: a part's prefix or a field's name that
    changed would silently leave a process on its default."""
    read = set().union(*(_variables(settings) for settings in PROCESS_CLASSES))
    assert read == {*VARIABLES, "WALLET_DATABASE_URL", "DATABASE_URL"}


@pytest.mark.parametrize("settings", PROCESS_CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.usefixtures("todays_variables")
def test_a_process_class_takes_each_of_its_variables(settings: type[BaseSettings]) -> None:
    loaded = settings()
    assert {field: _plain(getattr(loaded, field)) for field in settings.model_fields} == {
        field: _plain(EXPECTED[field]) for field in settings.model_fields
    }


def test_a_variable_means_the_same_in_every_class_that_reads_it() -> None:
    """The parts are shared, not copied: type, default, bounds and other name agree."""
    meanings: dict[str, set[str]] = {}
    for settings in PROCESS_CLASSES:
        for field, info in settings.model_fields.items():
            meanings.setdefault(field, set()).add(repr(info))
    assert {field: len(seen) for field, seen in meanings.items() if len(seen) > 1} == {}


# --- the rate limit and the log level --------------------------------------------------------


@pytest.mark.usefixtures("no_wallet_environment")
def test_the_rate_limit_is_parsed_once_into_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GatewaySettings().rate_limit == tuple(parse_many("100/second"))
    monkeypatch.setenv("WALLET_RATE_LIMIT", "100/second;2000/minute")
    limits = GatewaySettings().rate_limit
    assert [(limit.amount, limit.GRANULARITY.name) for limit in limits] == [
        (100, "second"),
        (2000, "minute"),
    ]
    monkeypatch.setenv("WALLET_RATE_LIMIT", "disabled")
    assert GatewaySettings().rate_limit == ()


_NOT_LIMITS = "not limits like '100/second;2000/minute', nor 'disabled'"
# A limit of 0 parses, but would refuse every request.
_REFUSES_ALL = "every limit must allow at least one request"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        *((spec, _NOT_LIMITS) for spec in ["", "100", "100/fortnight", "100/second;", "x/second"]),
        ("0/second", _REFUSES_ALL),
        ("100/second;0/minute", _REFUSES_ALL),
        ("5/0 minutes", _REFUSES_ALL),  # limits would read it as 5 per minute
        ("1/2 years", "every limit's period must be at most a year"),
        ("5/" + "9" * 309 + " seconds", "every limit's period must be at most a year"),
    ],
)
@pytest.mark.usefixtures("no_wallet_environment")
def test_a_malformed_rate_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch, spec: str, says: str
) -> None:
    monkeypatch.setenv("WALLET_RATE_LIMIT", spec)
    with pytest.raises(ValidationError) as refused:
        GatewaySettings()
    [error] = refused.value.errors()
    assert error["loc"] == ("rate_limit",)
    assert says in error["msg"]


@pytest.mark.parametrize(
    ("text", "level"), [("DEBUG", "DEBUG"), ("info", "INFO"), ("Warning", "WARNING")]
)
@pytest.mark.usefixtures("no_wallet_environment")
def test_the_log_level_is_a_level_name_in_any_case(
    monkeypatch: pytest.MonkeyPatch, text: str, level: str
) -> None:
    monkeypatch.setenv("WALLET_LOG_LEVEL", text)
    assert CommandSettings().log_level == level


@pytest.mark.parametrize("text", ["", "loud", "10", "INFO "])
@pytest.mark.usefixtures("no_wallet_environment")
def test_a_log_level_that_is_no_level_is_refused(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("WALLET_LOG_LEVEL", text)
    with pytest.raises(ValidationError) as refused:
        UpdaterSettings()
    assert [error["loc"] for error in refused.value.errors()] == [("log_level",)]


@pytest.mark.parametrize(
    ("variable", "value", "command", "field"),
    [
        ("WALLET_RATE_LIMIT", "100/fortnight", ["serve", "gateway"], "rate_limit"),
        ("WALLET_LOG_LEVEL", "loud", ["serve", "command"], "log_level"),
        ("WALLET_AUTH_HS256_SECRET", "short-secret", ["serve", "query"], "auth_hs256_secret"),
    ],
)
@pytest.mark.usefixtures("no_wallet_environment")
def test_the_command_reports_a_refused_setting_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    command: list[str],
    field: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wallet serve: invalid settings:\n  {field}: ")
    assert value not in err


# --- each process its own --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "foreign"),
    [
        pytest.param(settings, foreign, id=settings.__name__)
        for settings, foreign in [
            (GatewaySettings, ["table_name", "aggregate_shards", "database_url", "grpc_workers"]),
            (CommandSettings, ["database_url", "rate_limit", "trusted_proxies", "query_port"]),
            (QuerySettings, ["table_name", "aggregate_shards", "rate_limit", "command_port"]),
            (UpdaterSettings, ["auth", "auth_hs256_secret", "grpc_workers", "aggregate_shards"]),
            (ClientSettings, ["table_name", "database_url", "listen_host", "rate_limit"]),
            (DatabaseSettings, ["table_name", "log_level", "auth"]),  # `wallet migrate`
        ]
    ],
)
def test_a_process_class_has_no_field_of_another_process(
    settings: type[BaseSettings], foreign: list[str]
) -> None:
    assert not set(foreign) & set(settings.model_fields)
    for field in foreign:
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            settings(**{field: EXPECTED[field]})


def test_fields_of_a_process_of_its_own_are_in_no_other_process_class() -> None:
    """What a process class declares itself (not from a shared part) is that process's."""
    for settings in PROCESS_CLASSES:
        own = set(inspect.get_annotations(settings))
        for other in PROCESS_CLASSES:
            if not issubclass(other, settings):
                assert not own & set(other.model_fields), (settings.__name__, other.__name__)


@pytest.mark.usefixtures("no_wallet_environment")
def test_a_process_neither_reads_nor_validates_another_process_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WALLET_RATE_LIMIT", "100/fortnight")  # the gateway's, malformed
    monkeypatch.setenv("WALLET_AGGREGATE_SHARDS", "0")  # the command service's, out of range
    assert QuerySettings().grpc_workers == 64
    assert UpdaterSettings().table_name == "wallet-ledger"
    with pytest.raises(ValidationError, match="rate_limit"):
        GatewaySettings()
    with pytest.raises(ValidationError, match="aggregate_shards"):
        CommandSettings()
