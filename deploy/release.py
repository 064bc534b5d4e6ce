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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "terraform"
MIGRATE_TARGET = "aws_ecs_task_definition.migrate"
# A migration of the read model takes seconds; this bounds a task that never stops.
MIGRATE_TIMEOUT_SECONDS = 30 * 60
POLL_SECONDS = 10.0
STARTED_BY = "wallet-release"


class ReleaseFailed(Exception):
    """The release stopped before rolling the services; the message says why."""


@dataclass(frozen=True)
class MigrateTask:
    """The `migrate_task` output of terraform/outputs.tf."""

    region: str
    cluster: str
    task_definition_arn: str
    container: str
    subnets: list[str]
    security_groups: list[str]

    @classmethod
    def from_output(cls, output: dict[str, Any]) -> "MigrateTask":
        return cls(**{name: output[name] for name in cls.__dataclass_fields__})


class Steps:
    """Runs each step for real: Terraform as a child process, AWS calls through boto3."""

    def __init__(self, terraform_dir: Path, sleep: Callable[[float], None] = time.sleep) -> None:
        self._terraform_dir = terraform_dir
        self._sleep = sleep

    def terraform(self, *args: str) -> None:
        command = ["terraform", f"-chdir={self._terraform_dir}", *args]
        if subprocess.run(command).returncode != 0:
            raise ReleaseFailed(f"{' '.join(command)} failed")

    def migrate_task(self) -> MigrateTask:
        shown = subprocess.run(
            ["terraform", f"-chdir={self._terraform_dir}", "output", "-json", "migrate_task"],
            check=True,
            capture_output=True,
            text=True,
        )
        return MigrateTask.from_output(json.loads(shown.stdout))

    def aws(self, region: str, service: str, operation: str, **params: Any) -> dict[str, Any]:
        client = boto3.client(service, region_name=region)  # type: ignore[call-overload]
        try:
            answer: dict[str, Any] = getattr(client, operation)(**params)
        except ClientError as error:
            raise ReleaseFailed(f"{service} {operation}: {error}") from error
        return answer

    def pause(self) -> None:
        self._sleep(POLL_SECONDS)


class DryRun(Steps):
    """Prints each step instead of running it."""

    def __init__(self, terraform_dir: Path, out: Callable[[str], None] = print) -> None:
        super().__init__(terraform_dir)
        self._out = out

    def terraform(self, *args: str) -> None:
        self._out(f"terraform -chdir={self._terraform_dir} {' '.join(args)}")

    def migrate_task(self) -> MigrateTask:
        self._out(f"terraform -chdir={self._terraform_dir} output -json migrate_task")
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
        if operation == "run_task":
            return {"tasks": [{"taskArn": "<migrate task>"}], "failures": []}
        stopped = {"name": "migrate", "exitCode": 0}
        return {"tasks": [{"lastStatus": "STOPPED", "containers": [stopped]}]}

    def pause(self) -> None:
        pass


def release(steps: Steps, tag: str, terraform_args: Sequence[str]) -> None:
    """Migrates with the new image, then applies everything; raises ReleaseFailed when the
    migration did not succeed, before anything else changed."""
    variables = [*terraform_args, f"-var=image_tag={tag}"]
    steps.terraform("apply", f"-target={MIGRATE_TARGET}", *variables)
    run_migration(steps, steps.migrate_task())
    steps.terraform("apply", *variables)


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
    exit_code = containers.get(task.container, {}).get("exitCode")
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
        if tasks and tasks[0].get("lastStatus") == "STOPPED":
            stopped: dict[str, Any] = tasks[0]
            return stopped
        if time.monotonic() > deadline:
            raise ReleaseFailed(
                f"the migrate task {task_arn} did not stop within {MIGRATE_TIMEOUT_SECONDS} s; "
                "no service was rolled"
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
    steps = DryRun(options.terraform_dir) if options.dry_run else Steps(options.terraform_dir)
    try:
        release(steps, options.tag, terraform_args)
    except ReleaseFailed as failure:
        print(f"release stopped: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
