"""The release runs `wallet migrate` to success before any service rolls. The ECS calls go
through boto3 to moto, so botocore checks each call against the ECS API; what a stopped
task reports (its exit code) is set in moto's backend, as a real task would set it."""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends

from deploy.release import (
    MIGRATE_TARGETS,
    DryRun,
    MigrateTask,
    ReleaseFailed,
    Steps,
    main,
    release,
)

REGION = "eu-west-1"
TAG = "0123abc"
VARS = ["-var-file=/env/production.tfvars"]
TARGETS = " ".join(f"-target={address}" for address in MIGRATE_TARGETS)


class RecordedTerraform(Steps):
    """Real AWS calls (to moto); Terraform's commands are recorded, not run, and its
    migrate_task output is the task definition registered in moto."""

    def __init__(self, task: MigrateTask, exit_code: int | None, log: list[str]) -> None:
        super().__init__(Path("terraform"), sleep=lambda _: None)
        self._task = task
        self._exit_code = exit_code
        self.log = log

    def terraform(self, *args: str) -> None:
        self.log.append("terraform " + " ".join(args))

    def migrate_task(self, terraform_args: Sequence[str]) -> MigrateTask:
        return self._task

    def aws(self, region: str, service: str, operation: str, **params: Any) -> dict[str, Any]:
        self.log.append(f"{service}.{operation}")
        answer = super().aws(region, service, operation, **params)
        if operation == "run_task":
            self._stop(answer["tasks"][0]["taskArn"])
        return answer

    def _stop(self, task_arn: str) -> None:
        """The task runs `wallet migrate` and stops with the exit code of the test."""
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.stop_task(
            cluster=self._task.cluster, task=task_arn, reason="Essential container exited"
        )
        backend = ecs_backends[DEFAULT_ACCOUNT_ID][REGION]
        task = backend.tasks[self._task.cluster][task_arn]
        for container in task.containers:
            # A task killed before its container exited reports no exit code at all.
            container.exitCode = self._exit_code  # type: ignore[assignment]


@pytest.fixture
def migrate_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[MigrateTask]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName="wallet")
        registered = ecs.register_task_definition(
            family="wallet-migrate",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {"name": "migrate", "image": f"wallet:{TAG}", "command": ["migrate"], "memory": 512}
            ],
        )
        ec2 = boto3.client("ec2", region_name=REGION)
        subnets = [subnet["SubnetId"] for subnet in ec2.describe_subnets()["Subnets"]][:2]
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        group = ec2.create_security_group(GroupName="migrate", Description="m", VpcId=vpc)
        yield MigrateTask(
            region=REGION,
            cluster="wallet",
            task_definition_arn=registered["taskDefinition"]["taskDefinitionArn"],
            container="migrate",
            subnets=subnets,
            security_groups=[group["GroupId"]],
        )


def test_a_migration_that_succeeds_is_followed_by_the_full_apply(migrate_task: MigrateTask) -> None:
    log: list[str] = []
    release(RecordedTerraform(migrate_task, exit_code=0, log=log), TAG, VARS)
    assert log[0] == f"terraform apply {TARGETS} {VARS[0]} -var=image_tag={TAG}"
    assert log[1:3] == ["ecs.describe_task_definition", "ecs.run_task"]
    assert "ecs.describe_tasks" in log[3:-1]
    assert log[-1] == f"terraform apply {VARS[0]} -var=image_tag={TAG}"


@pytest.mark.parametrize("exit_code", [1, None], ids=["failed", "killed without exit code"])
def test_a_migration_that_fails_rolls_no_service(
    migrate_task: MigrateTask, exit_code: int | None
) -> None:
    log: list[str] = []
    with pytest.raises(ReleaseFailed, match=f"exit code {exit_code}.*no service was rolled"):
        release(RecordedTerraform(migrate_task, exit_code=exit_code, log=log), TAG, VARS)
    assert [line for line in log if line.startswith("terraform")] == [
        f"terraform apply {TARGETS} {VARS[0]} -var=image_tag={TAG}"
    ]


def test_a_migrate_task_that_does_not_start_rolls_no_service(migrate_task: MigrateTask) -> None:
    missing = MigrateTask(**{**migrate_task.__dict__, "cluster": "no-such-cluster"})
    log: list[str] = []
    with pytest.raises(ReleaseFailed, match=r"run_task.*Cluster not found"):
        release(RecordedTerraform(missing, exit_code=0, log=log), TAG, VARS)
    assert log.count(f"terraform apply {VARS[0]} -var=image_tag={TAG}") == 0


def test_a_migrate_task_definition_of_another_image_is_not_run(migrate_task: MigrateTask) -> None:
    """A stale migrate_task (the previous release's revision) must never be migrated with."""
    log: list[str] = []
    with pytest.raises(ReleaseFailed, match="not the tag newer"):
        release(RecordedTerraform(migrate_task, exit_code=0, log=log), "newer", VARS)
    assert "ecs.run_task" not in log


def test_the_dry_run_prints_every_step_in_order_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--tag", TAG, "--var-file", "/env/production.tfvars", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"apply {TARGETS} {VARS[0]} -var=image_tag={TAG}")
    assert "console" in lines[1]
    assert lines[1].endswith("'jsonencode(local.migrate_task)'")
    assert lines[2].startswith("aws ecs describe_task_definition --region <region> ")
    assert lines[3].startswith("aws ecs run_task --region <region> ")
    assert '"launchType": "FARGATE"' in lines[3]
    assert lines[4].startswith("aws ecs describe_tasks --region <region> ")
    assert lines[5].endswith(f"apply {VARS[0]} -var=image_tag={TAG}")
    assert len(lines) == 6


def test_the_dry_run_answers_like_a_migration_that_succeeded() -> None:
    printed: list[str] = []
    release(DryRun(Path("terraform"), TAG, out=printed.append), TAG, VARS)
    assert len(printed) == 6
