"""terraform/ against the database roles `wallet migrate` creates (migrations.ProcessRoles):

- query and updater sign in as their own role with IAM tokens: no secret, the role's name in
  WALLET_DATABASE_USER, WALLET_DATABASE_IAM_AUTH on, rds-db:connect on that role only, no
  Secrets Manager for their execution roles;
- migrate signs in as the master user with the RDS-managed secret;
- the cluster accepts IAM tokens, over TLS only.
"""

from dataclasses import asdict

import pytest

from services.ledger.adapters.migrations import ROLES
from tests.unit.test_infrastructure_drift import (
    PROCESSES,
    _data,
    _env_name,
    _environment,
    _local,
    _ref,
    _resource,
    _secrets,
)

IAM_PROCESSES = ("query", "updater")
_USER, _IAM_AUTH = _env_name("database_user"), _env_name("database_iam_auth")


def test_terraform_names_the_roles_migrate_creates() -> None:
    assert _local("database_users") == asdict(ROLES)


@pytest.mark.parametrize("process", IAM_PROCESSES)
def test_process_signs_in_as_its_own_role_with_iam_tokens(process: str) -> None:
    environment = _environment(process)
    assert environment[_USER] == _ref(f"local.database_users.{process}")
    assert environment[_IAM_AUTH] == "true"
    assert _secrets(process) == {}


def test_migrate_signs_in_as_the_master_user_with_its_secret() -> None:
    """The one-off task reads the secret when it starts, so a rotation cannot break it; it
    must not use IAM tokens: the master user is no member of rds_iam."""
    assert _environment("migrate")[_IAM_AUTH] == "false"
    assert _secrets("migrate")[_USER] == f"{_ref('local.db_secret_arn')}:username::"


def test_task_roles_may_connect_as_their_own_database_role_only() -> None:
    document = _data("aws_iam_policy_document", "database_connect")
    assert document["for_each"] == _ref("local.database_users")
    [statement] = document["statement"]
    assert statement["actions"] == ["rds-db:connect"]
    assert statement.get("effect", "Allow") == "Allow"
    cluster = _ref("aws_rds_cluster.read_model.cluster_resource_id")
    assert statement["resources"] == [
        "arn:${local.partition}:rds-db:${var.region}:${local.account_id}:dbuser:"
        + cluster
        + "/${each.value}"
    ]
    policy = _resource("aws_iam_role_policy", "database_connect")
    assert policy["for_each"] == _ref("local.database_users")
    assert policy["role"] == _ref("aws_iam_role.task[each.key].id")
    assert policy["policy"] == _ref("data.aws_iam_policy_document.database_connect[each.key].json")
    assert set(_local("database_users")) == set(IAM_PROCESSES)


def test_only_tasks_with_secrets_may_read_the_database_secret() -> None:
    """The execution roles get Secrets Manager (and its KMS decrypt) only for a task whose
    container has `secrets`: migrate's alone now."""
    dynamic = _data("aws_iam_policy_document", "execution")["dynamic"]
    for block in dynamic:
        assert block["statement"]["for_each"].startswith(
            "${length(local.containers[each.key].secrets) > 0 ?"
        )
    assert [process for process in PROCESSES if _secrets(process)] == ["migrate"]


def test_query_service_starts_after_its_role_may_connect() -> None:
    depends_on = _resource("aws_ecs_service", "query")["depends_on"]
    assert _ref("aws_iam_role_policy.database_connect") in depends_on


def test_the_cluster_accepts_iam_tokens_over_tls_only() -> None:
    cluster = _resource("aws_rds_cluster", "read_model")
    assert cluster["iam_database_authentication_enabled"] is True
    parameters = _resource("aws_rds_cluster_parameter_group", "read_model")["parameter"]
    [force_ssl] = [parameter for parameter in parameters if parameter["name"] == "rds.force_ssl"]
    assert force_ssl["value"] == "1"
