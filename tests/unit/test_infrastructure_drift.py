"""terraform/ against the code it deploys, read with python-hcl2 (no provider, no AWS).

- the DynamoDB table equals ledger_table.table_definition;
- every task sets exactly the settings its process reads (PROCESS_SETTINGS below), the
  migrate task's credentials through `secrets` (query and updater have none: IAM database
  authentication, tests/unit/test_database_roles_drift.py), and every field of a process's
  settings class (PROCESS_CLASSES) is either deployed or said not to be;
- the ports equal the defaults in the settings, wherever terraform uses them; metrics are open
  to the scrapers' security groups only, and the load balancer keeps /metrics to itself;
- the gateway keeps idle connections open longer than the load balancer does;
- each task role allows exactly the DynamoDB actions of its process (the DYNAMODB_ACTIONS
  tuples next to the calls), and those tuples cover every call the code makes;
- the tasks run the `wallet` subcommands the CLI has, with the image's health check.
"""

import argparse
import ast
import importlib.util
import re
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2
import pytest
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.ledger.adapters import ledger_table, write_store
from services.ledger.domain.records import Deposit
from services.platform.settings import (
    PROJECT_ROOT,
    CommandSettings,
    DatabaseSettings,
    GatewaySettings,
    QuerySettings,
    TableSettings,
    UpdaterSettings,
)
from services.updater import stream_reader
from wallet_cli.main import build_parser

TERRAFORM = PROJECT_ROOT / "terraform"
HEALTHCHECK = PROJECT_ROOT / "docker" / "healthcheck.py"
PROCESSES = ("gateway", "command", "query", "updater", "migrate")
SERVED = ("gateway", "command", "query")
# The served processes with a metrics port of their own (the gateway uses its HTTP port).
METRICS_PORTS = ("command", "query")

_DATABASE = {
    "database_host",
    "database_port",
    "database_name",
    "database_user",
    "database_iam_auth",
}
# Tokens are verified against the identity provider's JWKS wherever they arrive.
_AUTH = {"auth_jwks_url", "auth_issuer", "auth_audience"}
_GRPC_LIMITS = {"grpc_max_receive_bytes", "grpc_max_concurrent_rpcs"}
# The settings class each process reads (wallet_cli/main.py): the entry points it calls take
# that class or a part of it, so its fields are all the process can read.
PROCESS_CLASSES: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "command": CommandSettings,
    "query": QuerySettings,
    "updater": UpdaterSettings,
    "migrate": DatabaseSettings,
}
# Which fields of its class each process is deployed with.
PROCESS_SETTINGS: dict[str, set[str]] = {
    "gateway": {
        "listen_host",
        "gateway_port",
        "command_address",
        "query_address",
        "gateway_deadline_seconds",
        "gateway_keep_alive_seconds",
        "shutdown_grace_seconds",
        "log_level",
        *_AUTH,
        "rate_limit",
        "trusted_proxies",
    },
    "command": {
        "table_name",
        "aggregate_shards",
        "listen_host",
        "command_port",
        "command_metrics_port",
        "grpc_workers",
        *_GRPC_LIMITS,
        *_AUTH,
        "shutdown_grace_seconds",
        "log_level",
    },
    "query": _DATABASE
    | {
        "database_pool_size",
        "listen_host",
        "query_port",
        "query_metrics_port",
        "grpc_workers",
        *_GRPC_LIMITS,
        *_AUTH,
        "shutdown_grace_seconds",
        "log_level",
    },
    "updater": _DATABASE | {"table_name", "stream_delivery_allowance_seconds", "log_level"},
    # The master user's password: the only process that has one.
    "migrate": _DATABASE | {"database_password"},
}
# The fields of its class a process is deployed without, and why.
_KEYS_NOT_DEPLOYED = {
    "auth": "enabled unless set to disabled, which no deployment may be",
    "auth_hs256_secret": "the local stack's and the tests' key: AWS verifies with a JWKS",
}
_URL_NOT_DEPLOYED = {
    "database_url": "on AWS the URL is built from WALLET_DATABASE_*: the secret has no URL",
}
_NO_PASSWORD = {"database_password": "IAM database authentication: a token per connection"}
NOT_DEPLOYED: dict[str, dict[str, str]] = {
    "gateway": _KEYS_NOT_DEPLOYED,
    "command": _KEYS_NOT_DEPLOYED,
    "query": _KEYS_NOT_DEPLOYED | _URL_NOT_DEPLOYED | _NO_PASSWORD,
    "updater": _URL_NOT_DEPLOYED
    | _NO_PASSWORD
    | {
        "listen_host": "only `wallet update --follow` serves metrics; AWS runs one pass",
        "updater_metrics_port": "only `wallet update --follow` serves metrics",
        "updater_interval_seconds": "only for `wallet update --follow`; AWS runs one pass a run",
    },
    "migrate": _URL_NOT_DEPLOYED,
}
# Migrate's credentials: from the database secret's JSON keys, never in `environment`.
SECRET_SETTINGS = {"database_user": "username", "database_password": "password"}
# boto3's own variables, for the processes that call AWS or sign with its credentials (the
# query service's database tokens; botocore ignores AWS_REGION).
BOTO_ENVIRONMENT = {
    "command": {"AWS_DEFAULT_REGION"},
    "query": {"AWS_DEFAULT_REGION"},
    "updater": {"AWS_DEFAULT_REGION"},
}

# Where each process starts; the code it runs is what these import, transitively.
PROCESS_ENTRY_MODULES = {
    "command": ["services/command/server.py"],
    "updater": ["services/updater/main.py"],  # also `wallet update --rebuild` and reconcile
    "query": ["services/query/server.py"],
    "gateway": ["gateway/server.py"],
    # Alembic loads the migration scripts by path.
    "migrate": ["services/ledger/adapters/migrations.py", "services/ledger/migrations/**/*.py"],
}
# Code that a process imports but never runs, so its DynamoDB calls are not the process's.
NOT_RUN: dict[str, dict[tuple[str, str], str]] = {
    process: {
        ("services/ledger/adapters/ledger_table.py", "ensure_table"): (
            "`wallet create-table` and the local stack only: on AWS terraform owns the table"
        ),
    }
    for process in PROCESSES
}
NOT_RUN["updater"][("services/ledger/adapters/write_store.py", "DynamoWriteStore")] = (
    "the updater takes only dynamodb_client() from the write store"
)
CODE_DYNAMODB_ACTIONS = {
    "command": write_store.DYNAMODB_ACTIONS,
    "updater": stream_reader.DYNAMODB_ACTIONS,
}
# Attribute or variable names the DynamoDB and DynamoDB Streams clients go by in that code.
_CLIENT_NAMES = {"client", "_client", "dynamodb", "_dynamodb", "streams", "_streams"}
_NOT_CALLS = {"exceptions", "meta"}
_TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


# --- reading terraform/ ------------------------------------------------------------------


def _terraform_files() -> list[Path]:
    return sorted([*TERRAFORM.glob("*.tf"), *TERRAFORM.glob("*.tfvars")])


def _parse(path: Path) -> dict[str, Any]:
    options = hcl2.SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    with path.open() as file:
        parsed: dict[str, Any] = hcl2.load(file, serialization_options=options)
    return parsed


@cache
def _terraform() -> dict[str, Any]:
    """Every block of terraform/*.tf: {"resource": {type: {name: body}}, "data": ...,
    "locals": {name: value}, "variable": {name: body}}."""
    merged: dict[str, Any] = {"resource": {}, "data": {}, "locals": {}, "variable": {}}
    for path in TERRAFORM.glob("*.tf"):
        parsed = _parse(path)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_, named in block.items():
                    for name, body in named.items():
                        merged[kind].setdefault(type_, {})[name] = body
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
        for block in parsed.get("variable", []):
            merged["variable"].update(block)
    return merged


def _resource(type_: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = _terraform()["resource"][type_][name]
    return body


def _data(type_: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = _terraform()["data"][type_][name]
    return body


def _local(name: str) -> Any:
    return _terraform()["locals"][name]


def _default(variable: str) -> Any:
    return _terraform()["variable"][variable]["default"]


def _ref(expression: str) -> str:
    return "${" + expression + "}"


_PORT = re.compile(r"\$\{(?:tostring\()?local\.ports\.(\w+)\)?\}")
_HOST = re.compile(r"\$\{local\.service_hosts\.(\w+)\}")
_VARIABLE = re.compile(r"\$\{(?:tostring\()?var\.(\w+)\)?\}")


def _resolve(value: Any) -> Any:
    """A value with local.ports, local.service_hosts and variables' defaults put in;
    other references stay as they are."""
    if not isinstance(value, str):
        return value
    ports, hosts = _local("ports"), _local("service_hosts")
    previous = None
    while previous != value:
        previous = value
        value = _PORT.sub(lambda match: str(ports[match[1]]), value)
        value = _HOST.sub(lambda match: hosts[match[1]], value)
        value = _VARIABLE.sub(lambda match: str(_default(match[1])), value)
    if re.fullmatch(r"\d+", value):
        return int(value)
    return value


def _container(process: str) -> dict[str, Any]:
    container: dict[str, Any] = _local("containers")[process]
    return container


def _environment(process: str) -> dict[str, str]:
    return {item["name"]: item["value"] for item in _container(process)["environment"]}


def _secrets(process: str) -> dict[str, str]:
    return {item["name"]: item["valueFrom"] for item in _container(process)["secrets"]}


def _field(process: str, name: str) -> FieldInfo:
    return PROCESS_CLASSES[process].model_fields[name]


def _env_name(field: str) -> str:
    """A field's variable, the same in every class that has it (tests/unit/test_settings.py)."""
    settings = next(cls for cls in PROCESS_CLASSES.values() if field in cls.model_fields)
    alias = settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{settings.model_config['env_prefix']}{field}".upper()


@pytest.mark.parametrize("path", _terraform_files(), ids=lambda path: path.name)
def test_every_terraform_file_parses(path: Path) -> None:
    assert _parse(path)


def test_the_configuration_has_every_process() -> None:
    assert set(_local("containers")) == set(PROCESSES)
    assert set(_terraform()["resource"]["aws_ecs_task_definition"]) == set(PROCESSES)


# --- the table ---------------------------------------------------------------------------


def test_table_equals_the_code_definition() -> None:
    definition = ledger_table.table_definition(TableSettings().table_name)
    table = _resource("aws_dynamodb_table", "ledger")
    keys = {key["KeyType"]: key["AttributeName"] for key in definition["KeySchema"]}
    assert {"HASH": table["hash_key"], "RANGE": table["range_key"]} == keys
    assert {attribute["name"]: attribute["type"] for attribute in table["attribute"]} == {
        attribute["AttributeName"]: attribute["AttributeType"]
        for attribute in definition["AttributeDefinitions"]
    }
    assert table["billing_mode"] == definition["BillingMode"]
    stream = definition["StreamSpecification"]
    assert table["stream_enabled"] is stream["StreamEnabled"]
    assert table["stream_view_type"] == stream["StreamViewType"]
    assert _resolve(table["name"]) == TableSettings().table_name


def test_table_is_protected() -> None:
    table = _resource("aws_dynamodb_table", "ledger")
    assert table["point_in_time_recovery"] == [{"enabled": True}]
    assert table["server_side_encryption"] == [
        {"enabled": True, "kms_key_arn": _ref("aws_kms_key.wallet.arn")}
    ]
    assert table["deletion_protection_enabled"] == _ref("var.deletion_protection")
    assert _default("deletion_protection") is True


def test_tasks_use_the_terraform_table() -> None:
    for process in ("command", "updater"):
        assert _environment(process)["WALLET_TABLE_NAME"] == _ref("aws_dynamodb_table.ledger.name")


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("process", PROCESSES)
def test_every_setting_of_a_process_is_deployed_or_said_not_to_be(process: str) -> None:
    deployed, not_deployed = PROCESS_SETTINGS[process], set(NOT_DEPLOYED[process])
    assert not deployed & not_deployed
    assert deployed | not_deployed == set(PROCESS_CLASSES[process].model_fields)


@pytest.mark.parametrize("process", PROCESSES)
def test_task_sets_exactly_the_settings_its_process_reads(process: str) -> None:
    expected = {_env_name(field) for field in PROCESS_SETTINGS[process]}
    expected |= BOTO_ENVIRONMENT.get(process, set())
    environment, secrets = _environment(process), _secrets(process)
    assert not set(environment) & set(secrets), "a variable is set twice"
    assert set(environment) | set(secrets) == expected


@pytest.mark.parametrize("process", PROCESSES)
def test_credentials_come_from_the_database_secret(process: str) -> None:
    """Only migrate gets the secret; query and updater sign in with IAM tokens."""
    secrets = _secrets(process)
    expected = SECRET_SETTINGS if process == "migrate" else {}
    assert secrets == {
        _env_name(field): f"{_ref('local.db_secret_arn')}:{json_key}::"
        for field, json_key in expected.items()
    }
    assert _env_name("database_password") not in _environment(process)
    assert not {"DATABASE_URL", "WALLET_DATABASE_URL"} & set(_environment(process))
    assert _local("db_secret_arn") == _ref(
        "aws_rds_cluster.read_model.master_user_secret[0].secret_arn"
    )


def test_database_password_is_managed_by_rds() -> None:
    cluster = _resource("aws_rds_cluster", "read_model")
    assert cluster["manage_master_user_password"] is True
    assert "master_password" not in cluster
    assert not any("password" in name for name in _terraform()["variable"])


def test_database_settings_point_at_the_cluster() -> None:
    writer = _ref("aws_rds_cluster.read_model.endpoint")
    expected_hosts = {
        "query": _ref("aws_rds_cluster.read_model.reader_endpoint"),
        "updater": writer,
        "migrate": writer,
    }
    for process, host in expected_hosts.items():
        environment = _environment(process)
        assert environment["WALLET_DATABASE_HOST"] == host
        assert environment["WALLET_DATABASE_NAME"] == _ref(
            "aws_rds_cluster.read_model.database_name"
        )
        assert _resolve(environment["WALLET_DATABASE_PORT"]) == _local("ports")["database"]
    cluster = _resource("aws_rds_cluster", "read_model")
    assert _resolve(cluster["port"]) == _local("ports")["database"]


# --- ports ---------------------------------------------------------------------------------


def test_ports_are_the_settings_defaults() -> None:
    ports = _local("ports")
    for process in SERVED:
        assert ports[process] == _field(process, f"{process}_port").default
    for process in METRICS_PORTS:
        port = _field(process, f"{process}_metrics_port").default
        assert ports[f"{process}_metrics"] == port


@pytest.mark.parametrize("process", PROCESSES)
def test_container_listens_where_its_settings_say(process: str) -> None:
    mappings = [
        _resolve(mapping["containerPort"]) for mapping in _container(process)["portMappings"]
    ]
    if process not in SERVED:
        assert mappings == []
        return
    port = _field(process, f"{process}_port").default
    if process in METRICS_PORTS:
        metrics_port = _field(process, f"{process}_metrics_port").default
        assert mappings == [port, metrics_port]
        setting = _env_name(f"{process}_metrics_port")
        assert _resolve(_environment(process)[setting]) == metrics_port
    else:
        assert mappings == [port]  # the gateway serves /metrics on its own port
    assert _resolve(_environment(process)[_env_name(f"{process}_port")]) == port


def test_gateway_reaches_the_services_by_their_service_connect_names() -> None:
    environment = _environment("gateway")
    for service in ("command", "query"):
        port = _field(service, f"{service}_port").default
        connect = _resource("aws_ecs_service", service)["service_connect_configuration"][0]
        alias = connect["service"][0]["client_alias"][0]
        assert connect["enabled"] is True
        assert _resolve(alias["port"]) == port
        address = f"{_resolve(alias['dns_name'])}:{port}"
        assert _resolve(environment[_env_name(f"{service}_address")]) == address
        assert address == f"{service}.{_default('service_namespace')}:{port}"
    gateway_connect = _resource("aws_ecs_service", "gateway")["service_connect_configuration"]
    assert gateway_connect[0]["enabled"] is True


def test_load_balancer_sends_traffic_to_the_gateway_port() -> None:
    port = _field("gateway", "gateway_port").default
    target_group = _resource("aws_lb_target_group", "gateway")
    assert _resolve(target_group["port"]) == port
    # Liveness, not readiness: an outage of one backend must not take every gateway out.
    assert target_group["health_check"][0]["path"] == "/healthz"
    load_balancer = _resource("aws_ecs_service", "gateway")["load_balancer"][0]
    assert _resolve(load_balancer["container_port"]) == port
    assert load_balancer["container_name"] == "gateway"


@pytest.mark.parametrize(
    ("rule", "service"),
    [("command_from_clients", "command"), ("query_from_clients", "query")],
)
def test_grpc_services_admit_only_their_clients_on_their_port(rule: str, service: str) -> None:
    ingress = _resource("aws_vpc_security_group_ingress_rule", rule)
    port = _field(service, f"{service}_port").default
    assert _resolve(ingress["from_port"]) == _resolve(ingress["to_port"]) == port
    assert ingress["security_group_id"] == _ref(f"aws_security_group.{service}.id")
    assert ingress["referenced_security_group_id"] == _ref("each.value")
    assert "cidr_ipv4" not in ingress
    assert ingress["for_each"] == _ref("local.grpc_client_security_groups")
    rules = _terraform()["resource"]["aws_vpc_security_group_ingress_rule"].values()
    into_service = [
        body
        for body in rules
        if body["security_group_id"] == _ref(f"aws_security_group.{service}.id")
        and _resolve(body["from_port"]) == port
    ]
    assert into_service == [ingress]


def test_metrics_are_open_only_to_the_scrapers_groups() -> None:
    """Each process's metrics port admits the scrapers' security groups and no address
    range; the updater (one pass a run) serves none."""
    ingress = _resource("aws_vpc_security_group_ingress_rule", "metrics_from_scrapers")
    assert ingress["for_each"] == _ref("local.metrics_scrapes")
    assert ingress["security_group_id"] == _ref("each.value.security_group_id")
    assert ingress["from_port"] == ingress["to_port"] == _ref("each.value.port")
    assert ingress["referenced_security_group_id"] == _ref("each.value.scraper")
    assert "cidr_ipv4" not in ingress
    assert "cidr_ipv6" not in ingress
    endpoints = {
        process: (endpoint["security_group_id"], _resolve(endpoint["port"]))
        for process, endpoint in _local("metrics_endpoints").items()
    }
    ports = {"gateway": "gateway_port", **{p: f"{p}_metrics_port" for p in METRICS_PORTS}}
    assert endpoints == {
        process: (_ref(f"aws_security_group.{process}.id"), _field(process, field).default)
        for process, field in ports.items()
    }
    assert "var.metrics_scraper_security_group_ids" in _local("metrics_scrapes")
    assert _default("metrics_scraper_security_group_ids") == []


def test_load_balancer_answers_metrics_itself() -> None:
    """The gateway serves /metrics on its API port, so the public listener must not pass
    that path on: a rule ahead of every other answers 404."""
    rule = _resource("aws_lb_listener_rule", "hide_metrics")
    assert rule["listener_arn"] == _ref("aws_lb_listener.https.arn")
    [action] = rule["action"]
    assert action["type"] == "fixed-response"
    assert action["fixed_response"][0]["status_code"] == "404"
    [condition] = rule["condition"]
    assert condition["path_pattern"][0]["values"] == ["/metrics", "/metrics/*"]
    rules = _terraform()["resource"]["aws_lb_listener_rule"].values()
    assert rule["priority"] == min(other["priority"] for other in rules)
    # Port 80 only redirects to the HTTPS listener, where the rule applies.
    assert _resource("aws_lb_listener", "http")["default_action"][0]["type"] == "redirect"


# --- keep-alive ---------------------------------------------------------------------------

# The load balancer's bounds of its idle timeout, in seconds.
_ALB_IDLE_TIMEOUT_BOUNDS = (1, 4000)
_REFERENCE = re.compile(r"\b(var|local)\.(\w+)\b")


def _integer(expression: Any, variables: dict[str, Any]) -> int:
    """An integer terraform expression (numbers, + and -, variables, locals, tostring()),
    with `variables` as the variables' values."""
    if isinstance(expression, int):
        return expression
    text = re.sub(r"^tostring\((.*)\)$", r"\1", expression.removeprefix("${").removesuffix("}"))

    def value(match: re.Match[str]) -> str:
        kind, name = match[1], match[2]
        return str(variables[name] if kind == "var" else _integer(_local(name), variables))

    return _sum(ast.parse(_REFERENCE.sub(lambda match: f"({value(match)})", text), mode="eval"))


def _sum(node: ast.AST) -> int:
    if isinstance(node, ast.Expression):
        return _sum(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _sum(node.left) + _sum(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        return _sum(node.left) - _sum(node.right)
    raise AssertionError(f"not an integer sum: {ast.unparse(node)}")


@pytest.mark.parametrize(
    "idle_timeout",
    [
        _ALB_IDLE_TIMEOUT_BOUNDS[0],
        _default("alb_idle_timeout_seconds"),
        _ALB_IDLE_TIMEOUT_BOUNDS[1],
    ],
)
def test_gateway_keeps_idle_connections_longer_than_the_load_balancer(idle_timeout: int) -> None:
    """Were the gateway to close an idle connection first, the load balancer could send a
    request on it just as it closes, and answer that request 502. Both timeouts follow the
    one variable, so the rule must hold for whatever value it is given."""
    variables = {name: body.get("default") for name, body in _terraform()["variable"].items()}
    variables["alb_idle_timeout_seconds"] = idle_timeout
    balancer = _integer(_resource("aws_lb", "gateway")["idle_timeout"], variables)
    setting = _environment("gateway")[_env_name("gateway_keep_alive_seconds")]
    assert balancer == idle_timeout
    assert _integer(setting, variables) > balancer


def test_gateway_default_keep_alive_outlasts_the_load_balancer() -> None:
    """A gateway started without the setting keeps connections longer than the load
    balancer's default idle timeout too."""
    default = _field("gateway", "gateway_keep_alive_seconds").default
    assert default > _default("alb_idle_timeout_seconds")


# --- IAM -----------------------------------------------------------------------------------


def _statements(document: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = _data("aws_iam_policy_document", document)["statement"]
    return statements


def test_command_role_allows_exactly_its_calls_on_the_table() -> None:
    [statement] = _statements("command_task")
    assert sorted(statement["actions"]) == sorted(write_store.DYNAMODB_ACTIONS)
    assert statement["resources"] == [_ref("aws_dynamodb_table.ledger.arn")]
    assert statement.get("effect", "Allow") == "Allow"
    policy = _resource("aws_iam_role_policy", "command_task")
    assert policy["role"] == _ref('aws_iam_role.task["command"].id')
    assert policy["policy"] == _ref("data.aws_iam_policy_document.command_task.json")


def test_updater_role_allows_exactly_its_calls_on_the_table_and_its_stream() -> None:
    [statement] = _statements("updater_task")
    assert sorted(statement["actions"]) == sorted(stream_reader.DYNAMODB_ACTIONS)
    table = _ref("aws_dynamodb_table.ledger.arn")
    assert sorted(statement["resources"]) == sorted([table, f"{table}/stream/*"])
    assert statement.get("effect", "Allow") == "Allow"
    assert "condition" not in statement
    policy = _resource("aws_iam_role_policy", "updater_task")
    assert policy["role"] == _ref('aws_iam_role.task["updater"].id')
    assert policy["policy"] == _ref("data.aws_iam_policy_document.updater_task.json")


def test_only_the_command_and_updater_roles_get_dynamodb_permissions() -> None:
    """No other policy document mentions DynamoDB, and no other policy is attached to a
    task role but database_connect (query and updater, test_database_roles_drift.py): the
    gateway and migrate tasks can call nothing on AWS."""
    for name, document in _terraform()["data"]["aws_iam_policy_document"].items():
        if name in ("command_task", "updater_task"):
            continue
        assert "dynamodb" not in repr(document).lower(), name
    task_policies = [
        (kind, name, body)
        for kind in ("aws_iam_role_policy", "aws_iam_role_policy_attachment")
        for name, body in _terraform()["resource"].get(kind, {}).items()
        if "aws_iam_role.task[" in body["role"]
    ]
    assert sorted(name for _, name, _ in task_policies) == [
        "command_task",
        "database_connect",
        "updater_task",
    ]


def test_each_task_has_its_own_roles() -> None:
    for process in PROCESSES:
        definition = _resource("aws_ecs_task_definition", process)
        assert definition["task_role_arn"] == _ref(f'aws_iam_role.task["{process}"].arn')
        assert definition["execution_role_arn"] == _ref(f'aws_iam_role.execution["{process}"].arn')
    assert _resource("aws_iam_role", "task")["for_each"] == _ref("local.processes")
    assert _local("processes") == _ref(f"toset({list(PROCESSES)!r})".replace("'", '"'))


_PROJECT_PACKAGES = ("services", "gateway", "wallet")


def _module_file(name: str) -> Path | None:
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _process_code(process: str) -> list[Path]:
    """The project's modules a process imports from its entry points, transitively (imports
    inside functions count too)."""
    todo = [
        path
        for pattern in PROCESS_ENTRY_MODULES[process]
        for path in sorted(PROJECT_ROOT.glob(pattern))
    ]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in _PROJECT_PACKAGES and (module := _module_file(name)):
                todo.append(module)
    return sorted(seen)


def _client_calls(path: Path, not_run: set[str]) -> set[str]:
    """Names of the methods a module calls on a DynamoDB or DynamoDB Streams client, outside
    the functions and classes in `not_run`."""
    calls = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in not_run:
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if isinstance(receiver, ast.Attribute):
                name = receiver.attr
            else:
                name = receiver.id if isinstance(receiver, ast.Name) else ""
            if name in _CLIENT_NAMES and node.func.attr not in _NOT_CALLS:
                calls.add(node.func.attr)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return calls


def _uses_boto(path: Path) -> bool:
    modules = _imported_modules(ast.parse(path.read_text(), str(path)))
    return any(name.split(".")[0] in ("boto3", "botocore") for name in modules)


def _transaction_item_actions() -> set[str]:
    """The IAM actions of the one transaction the command service writes."""
    deposit = Deposit(
        wallet_id="w",
        request_id="r",
        occurred_at=datetime(2019, 10, 5, 13, 48, 1, tzinfo=UTC),
        amount=Decimal("1.1"),
    )
    items = ledger_table.record_transaction_items("t", deposit, 0, deposit.occurred_at)
    return {_TRANSACT_ITEM_ACTIONS[kind] for item in items for kind in item}


def _iam_actions(method: str) -> set[str]:
    if method == "transact_write_items":
        return _transaction_item_actions()
    if method in {"get_waiter", "get_paginator", "transact_get_items", "execute_statement"}:
        pytest.fail(f"{method}: map it to its IAM actions in this test")
    return {"dynamodb:" + "".join(part.title() for part in method.split("_"))}


@pytest.mark.parametrize("process", PROCESSES)
def test_dynamodb_actions_in_the_code_cover_every_call(process: str) -> None:
    """The calls a process's code makes need exactly the actions in DYNAMODB_ACTIONS."""
    not_run: dict[str, set[str]] = {}
    for (module, name), _reason in NOT_RUN[process].items():
        not_run.setdefault(module, set()).add(name)
    calls = set()
    for path in _process_code(process):
        calls |= _client_calls(path, not_run.get(str(path.relative_to(PROJECT_ROOT)), set()))
    needed = set().union(*(_iam_actions(method) for method in calls)) if calls else set()
    assert needed == set(CODE_DYNAMODB_ACTIONS.get(process, ()))


@pytest.mark.parametrize("process", ["gateway", "migrate"])
def test_processes_without_aws_permissions_do_not_use_boto3(process: str) -> None:
    code = _process_code(process)
    assert code
    assert [path for path in code if _uses_boto(path)] == []


# --- what the tasks run ---------------------------------------------------------------------


@pytest.mark.parametrize("process", PROCESSES)
def test_task_runs_a_wallet_subcommand(process: str) -> None:
    definition = _resource("aws_ecs_task_definition", process)
    assert definition["container_definitions"] == _ref(f"jsonencode([local.containers.{process}])")
    container = _container(process)
    assert container["name"] == process
    assert container["readonlyRootFilesystem"] is True
    arguments = build_parser().parse_args(container["command"])
    assert callable(arguments.run)
    if process in SERVED:
        assert container["command"] == ["serve", process]
    else:
        assert container["command"] == [process.replace("updater", "update")]


@pytest.mark.parametrize("process", PROCESSES)
def test_served_processes_have_the_image_health_check(process: str) -> None:
    container = _container(process)
    if process not in SERVED:
        assert "healthCheck" not in container
        return
    command = container["healthCheck"]["command"]
    assert command == ["CMD", "python", "/opt/wallet/healthcheck.py", process]
    assert "/opt/wallet/healthcheck.py" in (PROJECT_ROOT / "Dockerfile").read_text()


def _healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wallet_image_healthcheck", HEALTHCHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_health_check_knows_every_served_process() -> None:
    parser = build_parser()
    subcommands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    service = next(
        action for action in subcommands.choices["serve"]._actions if action.dest == "service"
    )
    healthcheck = _healthcheck_module()
    assert service.choices is not None
    assert set(service.choices) == set(healthcheck.SERVED) == set(SERVED)
    assert healthcheck.served_process(["/opt/venv/bin/wallet", "serve", "query"]) == "query"
    assert healthcheck.served_process(["/opt/venv/bin/wallet", "update"]) is None


def test_updater_runs_on_the_schedule_variable() -> None:
    schedule = _resource("aws_scheduler_schedule", "updater")
    assert schedule["schedule_expression"] == _ref("var.updater_schedule")
    assert _default("updater_schedule") == "rate(5 minutes)"
    parameters = schedule["target"][0]["ecs_parameters"][0]
    assert parameters["task_definition_arn"] == _ref("aws_ecs_task_definition.updater.arn")


@pytest.mark.parametrize("process", PROCESSES)
def test_a_release_leaves_the_previous_task_definition_registered(process: str) -> None:
    """The rollback in docs/deploy.md points a service at the previous revision, which a
    release would otherwise deregister."""
    assert _resource("aws_ecs_task_definition", process)["skip_destroy"] is True


def test_applies_after_a_minor_upgrade_leave_the_engine_version_alone() -> None:
    cluster = _resource("aws_rds_cluster", "read_model")
    assert "engine_version" in _resolve(cluster["lifecycle"][0]["ignore_changes"])
    assert _resource("aws_rds_cluster_instance", "read_model")["auto_minor_version_upgrade"]
