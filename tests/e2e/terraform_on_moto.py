"""terraform/ planned and applied for real, against moto's AWS APIs: the provider from the
machine's filesystem mirror (as `make terraform-validate` installs it), checked against the
committed lock file, every endpoint pointed at one in-process moto server.

What moto cannot do is filled in or switched off here, each for a stated reason:
- the load balancer's certificate: moto's ACM knows only certificates imported into it;
- AWS managed IAM policies: moto loads them only when asked (MOTO_IAM_LOAD_MANAGED_POLICIES);
- ECS services never reach a steady state in moto (no task ever runs), so the override
  file does not wait for one;
- Application Auto Scaling's tag calls are not implemented in moto, and the provider
  retries the error until its timeout: tags are kept in a dict here;
- moto's RunTask wants a memory size on each container, as the EC2 launch type does;
  Fargate takes the task's, which is all terraform/ gives: a container without one counts
  as 0 here.
"""

import copy
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from services.platform.settings import PROJECT_ROOT
from tests.certificates import self_signed_certificate
from wallet_cli.local.dynamodb_local import free_port

TERRAFORM_DIR = PROJECT_ROOT / "terraform"
PROVIDER_MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
REGION = "us-east-1"
GATEWAY_DOMAIN = "wallet.example.com"
# Every service terraform/ uses, under the provider's endpoint names.
PROVIDER_ENDPOINTS = (
    "acm",
    "appautoscaling",
    "cloudwatch",
    "ecr",
    "ecs",
    "elbv2",
    "events",
    "iam",
    "kms",
    "logs",
    "rds",
    "s3",
    "scheduler",
    "secretsmanager",
    "servicediscovery",
    "sns",
    "sts",
    "wafv2",
    "dynamodb",
    "ec2",
)
ECS_SERVICES = ("gateway", "command", "query")


def missing_tools() -> str | None:
    """Why the apply cannot run on this machine, or None when it can."""
    if shutil.which("terraform") is None:
        return "terraform is not installed"
    if not (PROVIDER_MIRROR / "registry.terraform.io/hashicorp/aws").is_dir():
        return f"no provider mirror at {PROVIDER_MIRROR} (set TF_PROVIDER_MIRROR)"
    return None


@dataclass
class Applied:
    """The result of the apply: counts from Terraform's own summary lines, the outputs, and
    boto3 clients of the moto server that holds the resources."""

    planned_to_add: int
    added: int
    outputs: dict[str, Any]
    endpoint_url: str
    variables: dict[str, Any]
    workdir: Path
    terraform_env: dict[str, str]

    def client(self, service: str) -> Any:
        return moto_client(self.endpoint_url, service)


def moto_client(endpoint_url: str, service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
    )


@contextmanager
def moto_server() -> Iterator[str]:
    """An in-process moto server, with AWS managed policies loaded; yields its URL."""
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.server import ThreadedMotoServer

    tags: dict[str, dict[str, str]] = {}

    def list_tags_for_resource(self: ApplicationAutoScalingResponse) -> str:
        return json.dumps({"Tags": tags.get(self._get_param("ResourceARN"), {})})

    def tag_resource(self: ApplicationAutoScalingResponse) -> str:
        tags.setdefault(self._get_param("ResourceARN"), {}).update(self._get_param("Tags"))
        return "{}"

    def untag_resource(self: ApplicationAutoScalingResponse) -> str:
        resource = tags.get(self._get_param("ResourceARN"), {})
        for key in self._get_param("TagKeys"):
            resource.pop(key, None)
        return "{}"

    ApplicationAutoScalingResponse.list_tags_for_resource = list_tags_for_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.tag_resource = tag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.untag_resource = untag_resource  # type: ignore[attr-defined]
    requirements = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def fargate_requirements(task_definition: Any) -> Any:
        sized = copy.copy(task_definition)
        sized.container_definitions = [
            {"memory": 0, **each} for each in task_definition.container_definitions
        ]
        return requirements(sized)

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(  # type: ignore[method-assign]
        fargate_requirements
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_variables(acm: Any, ec2: Any) -> dict[str, Any]:
    """The variables of an environment in moto's default VPC."""
    certificate, key = self_signed_certificate(GATEWAY_DOMAIN)
    certificate_arn = acm.import_certificate(Certificate=certificate, PrivateKey=key)[
        "CertificateArn"
    ]
    vpc = next(vpc for vpc in ec2.describe_vpcs()["Vpcs"] if vpc["IsDefault"])
    subnets = sorted(
        (subnet["AvailabilityZone"], subnet["SubnetId"])
        for subnet in ec2.describe_subnets()["Subnets"]
        if subnet["VpcId"] == vpc["VpcId"]
    )
    ids = [subnet_id for _, subnet_id in subnets]
    return {
        "region": REGION,
        "vpc_id": vpc["VpcId"],
        "public_subnet_ids": ids[0:2],
        "private_subnet_ids": ids[2:4],
        "isolated_subnet_ids": ids[4:6],
        "certificate_arn": certificate_arn,
        "gateway_domain_name": GATEWAY_DOMAIN,
        "auth_jwks_url": "https://auth.example.com/.well-known/jwks.json",
        "auth_issuer": "https://auth.example.com/",
        "image_tag": "0123456789abcdef0123456789abcdef01234567",
        # A throw-away environment: destroy may delete everything.
        "deletion_protection": False,
        "skip_final_snapshot": True,
    }


def override_file(endpoint_url: str) -> str:
    endpoints = "\n".join(f'    {name} = "{endpoint_url}"' for name in PROVIDER_ENDPOINTS)
    services = "\n".join(
        f'resource "aws_ecs_service" "{name}" {{\n  wait_for_steady_state = false\n}}\n'
        for name in ECS_SERVICES
    )
    return f"""provider "aws" {{
  region                      = var.region
  access_key                  = "moto"
  secret_key                  = "moto"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}

{services}"""


def cli_config(directory: Path) -> Path:
    path = directory / "mirror.tfrc"
    path.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{PROVIDER_MIRROR}"\n'
        "  }\n}\n"
    )
    return path


def terraform_env(config: Path) -> dict[str, str]:
    """Terraform's environment: the mirror's CLI config, and no AWS_* of the tests (the
    provider's endpoints and keys are in the override file)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return {**env, "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1"}


def terraform(workdir: Path, config: Path, *args: str) -> str:
    done = subprocess.run(
        ["terraform", f"-chdir={workdir}", args[0], "-no-color", *args[1:]],
        env=terraform_env(config),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"terraform {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def count(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, f"no {pattern!r} in:\n{text}"
    return int(found.group(1))


@contextmanager
def applied_on_moto(scratch: Path) -> Iterator[Applied]:
    """terraform/ copied to `scratch`, initialised from the mirror, planned and applied
    against a fresh moto server that lives as long as the context."""
    workdir = scratch / "terraform"
    workdir.mkdir()
    for source in [*TERRAFORM_DIR.glob("*.tf"), TERRAFORM_DIR / ".terraform.lock.hcl"]:
        shutil.copy(source, workdir)
    config = cli_config(scratch)
    with moto_server() as endpoint_url:
        variables = moto_variables(
            moto_client(endpoint_url, "acm"), moto_client(endpoint_url, "ec2")
        )
        (workdir / "moto.auto.tfvars.json").write_text(json.dumps(variables))
        (workdir / "moto_override.tf").write_text(override_file(endpoint_url))
        terraform(workdir, config, "init", "-backend=false", "-input=false", "-lockfile=readonly")
        planned = terraform(workdir, config, "plan", "-input=false", "-out=release.plan")
        applied = terraform(workdir, config, "apply", "-input=false", "release.plan")
        outputs = json.loads(terraform(workdir, config, "output", "-json"))
        yield Applied(
            planned_to_add=count(r"Plan: (\d+) to add", planned),
            added=count(r"Resources: (\d+) added", applied),
            outputs={name: output["value"] for name, output in outputs.items()},
            endpoint_url=endpoint_url,
            variables=variables,
            workdir=workdir,
            terraform_env=terraform_env(config),
        )
