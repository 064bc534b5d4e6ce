"""terraform/ applied against moto, then read back through the AWS APIs: what the apply
created is what the code expects (table keys and stream, each task's command, environment
and secrets, each role's permissions, the updater's schedule)."""

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends

from deploy.release import Steps, release
from harness.dev_stack import wait_until_ready
from harness.processes import wallet_command
from services.ledger.adapters import ledger_table
from services.ledger.adapters.write_store import DYNAMODB_ACTIONS as COMMAND_ACTIONS
from services.updater.stream_reader import DYNAMODB_ACTIONS as UPDATER_ACTIONS
from tests.auth_support import JwksServer
from tests.e2e.fault_stack import PrivatePostgres
from tests.e2e.processes import WalletProcess, child_env, local_client
from tests.e2e.stack import HTTP_TIMEOUT, STARTUP_TIMEOUT
from tests.e2e.terraform_on_moto import (
    ECS_SERVICES,
    REGION,
    Applied,
    applied_on_moto,
    missing_tools,
)
from wallet_cli.local.dynamodb_local import DynamoDBLocal, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(missing_tools() is not None, reason=f"{missing_tools()}"),
]

# What each task runs: `wallet` (the image's entry point) and these arguments.
COMMANDS = {
    "gateway": ["serve", "gateway"],
    "command": ["serve", "command"],
    "query": ["serve", "query"],
    "updater": ["update"],
    "migrate": ["migrate"],
}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    with applied_on_moto(tmp_path_factory.mktemp("terraform-on-moto")) as result:
        yield result


def container(applied: Applied, process: str) -> dict[str, Any]:
    family = f"wallet-{process}"
    definition = applied.client("ecs").describe_task_definition(taskDefinition=family)
    containers: list[dict[str, Any]] = definition["taskDefinition"]["containerDefinitions"]
    assert [each["name"] for each in containers] == [process]
    return containers[0]


def role_actions(applied: Applied, role_arn: str) -> set[str]:
    iam = applied.client("iam")
    name = role_arn.rsplit("/", 1)[1]
    actions: set[str] = set()
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        for statement in document["Statement"]:
            listed = statement["Action"]
            actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def task_role(applied: Applied, process: str) -> str:
    definition = applied.client("ecs").describe_task_definition(taskDefinition=f"wallet-{process}")
    role: str = definition["taskDefinition"]["taskRoleArn"]
    return role


def test_everything_planned_was_created(applied: Applied) -> None:
    assert applied.planned_to_add > 0
    assert applied.added == applied.planned_to_add


def test_the_table_has_the_codes_keys_and_stream(applied: Applied) -> None:
    name = applied.outputs["table_name"]
    table = applied.client("dynamodb").describe_table(TableName=name)["Table"]
    expected = ledger_table.table_definition(name)
    assert table["KeySchema"] == expected["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    assert table["StreamSpecification"] == expected["StreamSpecification"]
    assert table["LatestStreamArn"]


@pytest.mark.parametrize("process", sorted(COMMANDS))
def test_each_task_runs_its_wallet_subcommand_from_the_tagged_image(
    applied: Applied, process: str
) -> None:
    definition = container(applied, process)
    assert definition["command"] == COMMANDS[process]
    repository = applied.outputs["ecr_repository_url"]
    assert definition["image"] == f"{repository}:{applied.variables['image_tag']}"


def test_every_task_definition_is_kept_when_replaced(applied: Applied) -> None:
    """skip_destroy: the revision a release replaces stays ACTIVE, the rollback target."""
    ecs = applied.client("ecs")
    for process in COMMANDS:
        definition = ecs.describe_task_definition(taskDefinition=f"wallet-{process}")
        assert definition["taskDefinition"]["status"] == "ACTIVE"


def test_the_command_role_may_only_write_the_table(applied: Applied) -> None:
    assert role_actions(applied, task_role(applied, "command")) == set(COMMAND_ACTIONS)


def test_the_updater_role_may_read_the_table_and_its_stream(applied: Applied) -> None:
    assert set(UPDATER_ACTIONS) <= role_actions(applied, task_role(applied, "updater"))


def test_the_gateway_role_has_no_aws_permission(applied: Applied) -> None:
    assert role_actions(applied, task_role(applied, "gateway")) == set()


def test_the_schedule_runs_one_updater_task_of_the_applied_definition(applied: Applied) -> None:
    schedule = applied.client("scheduler").get_schedule(Name="wallet-updater")
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    target = schedule["Target"]
    updater = applied.client("ecs").describe_task_definition(taskDefinition="wallet-updater")
    assert (
        target["EcsParameters"]["TaskDefinitionArn"]
        == (updater["taskDefinition"]["taskDefinitionArn"])
    )
    assert target["EcsParameters"]["TaskCount"] == 1
    cluster = applied.client("ecs").describe_clusters(clusters=[applied.outputs["cluster_name"]])
    assert target["Arn"] == cluster["clusters"][0]["clusterArn"]


# --- the applied task definitions, run here ------------------------------------------------


def secret_values(applied: Applied, definition: dict[str, Any]) -> dict[str, str]:
    """The container's `secrets`, resolved as ECS does at task start: valueFrom is
    <secret ARN>:<JSON key>:<version stage>:<version id>."""
    secrets = applied.client("secretsmanager")
    values = {}
    for secret in definition.get("secrets", []):
        parts = secret["valueFrom"].split(":")
        arn, key = ":".join(parts[:7]), parts[7]
        document = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
        values[secret["name"]] = str(document[key])
    return values


@dataclass
class LocalTasks:
    """The processes of the applied task definitions, with what Fargate would give them
    pointed here: DynamoDB Local for the table, a PostgreSQL that requires no password but
    offers TLS for the cluster, a local key set for the identity provider, loopback ports
    for the Service Connect names."""

    applied: Applied
    dynamodb: DynamoDBLocal
    postgres: PrivatePostgres
    jwks_url: str
    ports: dict[str, int]

    def env(self, process: str) -> dict[str, str]:
        definition = container(self.applied, process)
        task_env = {each["name"]: each["value"] for each in definition["environment"]}
        env = child_env()
        # The task's own auth and rate limit, not the tests' signing secret.
        del env["WALLET_AUTH_HS256_SECRET"], env["WALLET_RATE_LIMIT"]
        env.update(task_env)
        env.update(secret_values(self.applied, definition))
        env.update(self.dynamodb.client_env())
        env["AWS_DEFAULT_REGION"] = task_env.get("AWS_DEFAULT_REGION", REGION)
        local = {
            "WALLET_LISTEN_HOST": "127.0.0.1",
            "WALLET_GATEWAY_PORT": str(self.ports["gateway"]),
            "WALLET_COMMAND_PORT": str(self.ports["command"]),
            "WALLET_QUERY_PORT": str(self.ports["query"]),
            "WALLET_COMMAND_ADDRESS": f"127.0.0.1:{self.ports['command']}",
            "WALLET_QUERY_ADDRESS": f"127.0.0.1:{self.ports['query']}",
            "WALLET_DATABASE_HOST": "127.0.0.1",
            "WALLET_DATABASE_PORT": str(self.postgres.port),
            "WALLET_AUTH_JWKS_URL": self.jwks_url,
        }
        env.update({name: value for name, value in local.items() if name in task_env})
        return env


def run_task(tasks: LocalTasks, process: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        wallet_command(*container(tasks.applied, process)["command"]),
        env=tasks.env(process),
        capture_output=True,
        text=True,
        timeout=120,
    )


def create_cluster_database(tasks: LocalTasks) -> None:
    """What Aurora creates with the cluster (database.tf): the master user the migrate task
    signs in as (from the RDS-managed secret), with the rds_superuser powers it has there,
    and the cluster's database."""
    migrate = tasks.env("migrate")
    master, database = migrate["WALLET_DATABASE_USER"], migrate["WALLET_DATABASE_NAME"]
    with psycopg.connect(tasks.postgres.url(), autocommit=True) as connection:
        connection.execute(f'CREATE ROLE "{master}" LOGIN SUPERUSER')
        connection.execute(f'CREATE DATABASE "{database}" OWNER "{master}"')


def create_applied_table(applied: Applied, dynamodb: DynamoDBLocal) -> None:
    """The table as the apply created it in moto, created in DynamoDB Local."""
    name = applied.outputs["table_name"]
    table = applied.client("dynamodb").describe_table(TableName=name)["Table"]
    local_client(dynamodb).create_table(
        TableName=name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=table["StreamSpecification"],
    )


@pytest.fixture
def tls_postgres() -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres(tls=True)
    postgres.initdb()
    postgres.start()
    yield postgres
    postgres.remove()


def test_the_applied_task_definitions_record_and_read_a_deposit_here(
    applied: Applied, dynamodb_local: DynamoDBLocal, tls_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    create_applied_table(applied, dynamodb_local)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = JwksServer()
    jwks.serve_keys(("provider-key", key))
    tasks = LocalTasks(
        applied,
        dynamodb_local,
        tls_postgres,
        jwks.url,
        {process: free_port() for process in ECS_SERVICES},
    )
    create_cluster_database(tasks)
    started: list[WalletProcess] = []
    try:
        migrated = run_task(tasks, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        for process in ("command", "query"):
            service = WalletProcess.start(
                container(applied, process)["command"],
                tasks.env(process),
                command_port=tasks.ports[process],
                log_dir=tmp_path,
            )
            started.append(service)
            service.wait_until_serving()
        gateway = WalletProcess.start(
            container(applied, "gateway")["command"],
            tasks.env("gateway"),
            command_port=tasks.ports["gateway"],
            log_dir=tmp_path,
        )
        started.append(gateway)
        gateway_env = tasks.env("gateway")
        token = jwt.encode(
            {
                "iss": gateway_env["WALLET_AUTH_ISSUER"],
                "aud": gateway_env["WALLET_AUTH_AUDIENCE"],
                "sub": "terraform-on-moto",
                "exp": datetime.now(UTC) + timedelta(minutes=10),
                "wallets": ["*"],
            },
            key,
            algorithm="RS256",
            headers={"kid": "provider-key"},
        )
        headers = {"Authorization": f"Bearer {token}"}
        base_url = f"http://127.0.0.1:{tasks.ports['gateway']}"
        with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT) as client:
            wait_until_ready(
                gateway.process,
                base_url,
                STARTUP_TIMEOUT,
                logs=gateway.stderr_text,
                request_timeout=HTTP_TIMEOUT,
            )
            recorded = client.post(
                "/v1/wallets/fargate-here/records",
                headers={**headers, "Idempotency-Key": "first-deposit"},
                json={"datetime": "2024-05-01T10:15:00Z", "amount": "12.345"},
            )
            assert recorded.status_code == 201, recorded.text
            updated = run_task(tasks, "updater")
            assert updated.returncode == 0, updated.stderr
            balance = client.get("/v1/wallets/fargate-here/balance", headers=headers)
        assert balance.status_code == 200, balance.text
        assert balance.json()["balance"] == "12.345"
        # The query service signed in as its own role, over TLS, with a token for password.
        with psycopg.connect(tls_postgres.url()) as connection:
            sessions = connection.execute(
                "SELECT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
                " WHERE a.usename = 'wallet_query'"
            ).fetchall()
        assert sessions
        assert all(ssl for _, ssl in sessions), sessions
    finally:
        for service in reversed(started):
            service.stop()
        jwks.stop()


# --- a release (last: it changes the applied image) ----------------------------------------


class MotoRelease(Steps):
    """The release's own steps, Terraform and boto3 both against moto. moto starts no
    container, so a started task is stopped here with the exit code `wallet migrate`
    gives on success, and the image it would have run is remembered."""

    def __init__(self, applied: Applied) -> None:
        super().__init__(applied.workdir, sleep=lambda _: None, terraform_env=applied.terraform_env)
        self.migrated_with: list[str] = []

    def aws(self, region: str, service: str, operation: str, **params: Any) -> dict[str, Any]:
        answer = super().aws(region, service, operation, **params)
        if operation == "run_task":
            ecs = boto3.client("ecs", region_name=region)
            task_arn = answer["tasks"][0]["taskArn"]
            ecs.stop_task(cluster=params["cluster"], task=task_arn, reason="Essential exited")
            task = ecs_backends[DEFAULT_ACCOUNT_ID][region].tasks[params["cluster"]][task_arn]
            for each in task.containers:
                each.exitCode = 0
            definition = ecs.describe_task_definition(taskDefinition=params["taskDefinition"])
            self.migrated_with.append(
                definition["taskDefinition"]["containerDefinitions"][0]["image"]
            )
        return answer


@pytest.mark.timeout(900)  # two applies
def test_a_release_migrates_with_its_new_image_then_rolls_the_services(
    applied: Applied, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", applied.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto")
    ecs = applied.client("ecs")
    before = ecs.describe_services(cluster="wallet", services=["gateway"])["services"][0]
    steps = MotoRelease(applied)

    release(steps, "next-release", ["-auto-approve"])

    repository = applied.outputs["ecr_repository_url"]
    assert steps.migrated_with == [f"{repository}:next-release"]
    after = ecs.describe_services(cluster="wallet", services=["gateway"])["services"][0]
    rolled = ecs.describe_task_definition(taskDefinition=after["taskDefinition"])
    assert rolled["taskDefinition"]["containerDefinitions"][0]["image"].endswith(":next-release")
    # The revision that ran before stays registered: the documented rollback target.
    previous = ecs.describe_task_definition(taskDefinition=before["taskDefinition"])
    assert previous["taskDefinition"]["status"] == "ACTIVE"
