"""A release in the order that keeps the running version working: register the new migrate
task definition, run `wallet migrate` with it to success, and only then roll the services.

    python -m deploy.release --tag TAG --var-file terraform/production.tfvars [--dry-run]

With --dry-run nothing is changed: each Terraform command and each AWS call is printed, in
order, with the values an earlier step would supply shown as <placeholders>. Without it,
a migration that fails (or a task that stops without exit code 0) ends the release with
exit code 1 before any service rolls; docs/deploy.md says what to do then.
"""

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "terraform"
# What the migrate task needs to run, on a first deploy too (-target brings in what these
# depend on: the database cluster, the roles, the log group, the security groups).
MIGRATE_TARGETS = (
    "aws_ecs_task_definition.migrate",
    "aws_ecs_cluster.wallet",
    "aws_rds_cluster_instance.read_model",
    "aws_vpc_security_group_egress_rule.task_https",
    "aws_vpc_security_group_egress_rule.to_database",
    "aws_vpc_security_group_ingress_rule.database_from_clients",
)
# A migration of the read model takes seconds; this bounds a task that never stops.
MIGRATE_TIMEOUT_SECONDS = 30 * 60
POLL_SECONDS = 10.0
STARTED_BY = "wallet-release"


class ReleaseFailed(Exception):
    """The release stopped before rolling the services; the message says why."""


@dataclass(frozen=True)
class MigrateTask:
    """local.migrate_task of terraform/outputs.tf."""

    region: str
    cluster: str
    task_definition_arn: str
    container: str
    subnets: list[str]
    security_groups: list[str]

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> "MigrateTask":
        try:
            return cls(**{name: document[name] for name in cls.__dataclass_fields__})
        except KeyError as missing:
            raise ReleaseFailed(f"local.migrate_task has no {missing}") from missing


class Steps:
    """Runs each step for real: Terraform as a child process, AWS calls through boto3."""

    def __init__(
        self,
        terraform_dir: Path,
        sleep: Callable[[float], None] = time.sleep,
        terraform_env: Mapping[str, str] | None = None,
    ) -> None:
        self._terraform_dir = terraform_dir
        self._sleep = sleep
        self._terraform_env = terraform_env

    def _command(self, *args: str) -> list[str]:
        return ["terraform", f"-chdir={self._terraform_dir}", *args]

    def terraform(self, *args: str) -> None:
        try:
            finished = subprocess.run(self._command(*args), env=self._terraform_env)
        except OSError as error:
            raise ReleaseFailed(f"cannot run terraform: {error}") from error
        if finished.returncode != 0:
            raise ReleaseFailed(f"{' '.join(self._command(*args))} failed")

    def migrate_task(self, terraform_args: Sequence[str]) -> MigrateTask:
        """Evaluated from the state the targeted apply left: its outputs are not updated."""
        try:
            evaluated = subprocess.run(
                self._command("console", *terraform_args),
                input="jsonencode(local.migrate_task)\n",
                env=self._terraform_env,
                capture_output=True,
                text=True,
            )
        except OSError as error:
            raise ReleaseFailed(f"cannot run terraform: {error}") from error
        if evaluated.returncode != 0:
            raise ReleaseFailed(f"terraform console failed: {evaluated.stderr.strip()}")
        # console prints the JSON document as an HCL string literal.
        return MigrateTask.from_json(json.loads(json.loads(evaluated.stdout)))

    def aws(self, region: str, service: str, operation: str, **params: Any) -> dict[str, Any]:
        try:
            client = boto3.client(service, region_name=region)  # type: ignore[call-overload]
            answer: dict[str, Any] = getattr(client, operation)(**params)
        except (ClientError, BotoCoreError) as error:
            raise ReleaseFailed(f"{service} {operation}: {error}") from error
        return answer

    def pause(self) -> None:
        self._sleep(POLL_SECONDS)


class DryRun(Steps):
    """Prints each step instead of running it."""

    def __init__(self, terraform_dir: Path, tag: str, out: Callable[[str], None] = print) -> None:
        super().__init__(terraform_dir)
        self._tag = tag
        self._out = out

    def terraform(self, *args: str) -> None:
        self._out(" ".join(self._command(*args)))

    def migrate_task(self, terraform_args: Sequence[str]) -> MigrateTask:
        console = " ".join(self._command("console", *terraform_args))
        self._out(f"{console} <<< 'jsonencode(local.migrate_task)'")
        return MigrateTask(
            region="<region>",
            cluster="<cluster>",
            task_definition_arn="<migrate task definition registered above>",
            container="migrate",
            subnets=["<private subnets>"],
            security_groups=["<migrate security group>"],
        )

    def aws(self, region: str, service: str, operation: str, **params: Any) -> dict[str, Any]:
        self._out(f"aws {service} {operation} --region {region} {json.dumps(params)}")
        if operation == "describe_task_definition":
            image = f"<repository>:{self._tag}"
            return {
                "taskDefinition": {"containerDefinitions": [{"name": "migrate", "image": image}]}
            }
        if operation == "run_task":
            return {"tasks": [{"taskArn": "<migrate task>"}], "failures": []}
        stopped = {"name": "migrate", "exitCode": 0}
        return {"tasks": [{"lastStatus": "STOPPED", "containers": [stopped]}], "failures": []}

    def pause(self) -> None:
        pass


def release(steps: Steps, tag: str, terraform_args: Sequence[str]) -> None:
    """Migrates with the new image, then applies everything; raises ReleaseFailed when the
    migration did not succeed, before anything else changed."""
    variables = [*terraform_args, f"-var=image_tag={tag}"]
    targets = [f"-target={address}" for address in MIGRATE_TARGETS]
    steps.terraform("apply", *targets, *variables)
    task = steps.migrate_task([argument for argument in variables if argument.startswith("-var")])
    check_image(steps, task, tag)
    run_migration(steps, task)
    steps.terraform("apply", *variables)


def check_image(steps: Steps, task: MigrateTask, tag: str) -> None:
    """The migrate task definition about to run must be the one with the new image."""
    described = steps.aws(
        task.region, "ecs", "describe_task_definition", taskDefinition=task.task_definition_arn
    )
    containers = described["taskDefinition"]["containerDefinitions"]
    images = [each.get("image", "") for each in containers if each.get("name") == task.container]
    if not images or not images[0].endswith(f":{tag}"):
        raise ReleaseFailed(
            f"{task.task_definition_arn} runs {images or 'no ' + task.container + ' container'},"
            f" not the tag {tag}; no service was rolled"
        )


def run_migration(steps: Steps, task: MigrateTask) -> None:
    started = steps.aws(
        task.region,
        "ecs",
        "run_task",
        cluster=task.cluster,
        taskDefinition=task.task_definition_arn,
        launchType="FARGATE",
        startedBy=STARTED_BY,
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": task.subnets,
                "securityGroups": task.security_groups,
                "assignPublicIp": "DISABLED",
            }
        },
    )
    if started.get("failures") or not started.get("tasks"):
        raise ReleaseFailed(f"the migrate task did not start: {started.get('failures')}")
    task_arn = started["tasks"][0]["taskArn"]
    stopped = wait_until_stopped(steps, task, task_arn)
    containers = {container.get("name"): container for container in stopped.get("containers", [])}
    if task.container not in containers:
        raise ReleaseFailed(
            f"the migrate task has no container {task.container!r} (it has "
            f"{sorted(map(str, containers))}); no service was rolled"
        )
    exit_code = containers[task.container].get("exitCode")
    if exit_code != 0:
        raise ReleaseFailed(
            f"wallet migrate ended with exit code {exit_code} "
            f"({stopped.get('stoppedReason', 'no reason given')}); no service was rolled"
        )


def wait_until_stopped(steps: Steps, task: MigrateTask, task_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + MIGRATE_TIMEOUT_SECONDS
    while True:
        described = steps.aws(
            task.region, "ecs", "describe_tasks", cluster=task.cluster, tasks=[task_arn]
        )
        tasks = described.get("tasks", [])
        if not tasks:
            raise ReleaseFailed(f"ECS cannot describe {task_arn}: {described.get('failures')}")
        if tasks[0].get("lastStatus") == "STOPPED":
            stopped: dict[str, Any] = tasks[0]
            return stopped
        if time.monotonic() > deadline:
            steps.aws(
                task.region,
                "ecs",
                "stop_task",
                cluster=task.cluster,
                task=task_arn,
                reason=f"{STARTED_BY}: no result within {MIGRATE_TIMEOUT_SECONDS} s",
            )
            raise ReleaseFailed(
                f"the migrate task {task_arn} did not stop within {MIGRATE_TIMEOUT_SECONDS} s "
                "and was stopped; no service was rolled"
            )
        steps.pause()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.release", description=__doc__)
    parser.add_argument("--tag", required=True, help="the image tag to release (git commit)")
    parser.add_argument("--var-file", required=True, help="the environment's .tfvars")
    parser.add_argument("--terraform-dir", type=Path, default=TERRAFORM_DIR)
    parser.add_argument(
        "--auto-approve", action="store_true", help="apply without Terraform's prompt"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print each step and AWS call; change nothing"
    )
    options = parser.parse_args(argv)
    terraform_args = [f"-var-file={Path(options.var_file).resolve()}"]
    if options.auto_approve:
        terraform_args.append("-auto-approve")
    steps = (
        DryRun(options.terraform_dir, options.tag)
        if options.dry_run
        else Steps(options.terraform_dir)
    )
    try:
        release(steps, options.tag, terraform_args)
    except ReleaseFailed as failure:
        print(f"release stopped: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
