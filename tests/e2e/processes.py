"""Helpers for end-to-end tests: `wallet` commands as real child processes (started and
stopped by harness/processes.py) with the tests' environment and signing secret, talked to
over real sockets, and the ledger table's contents as they see it."""

import contextlib
import json
import os
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import boto3
import grpc
import psutil
from botocore.config import Config
from google.protobuf.timestamp_pb2 import Timestamp

from harness.dev_stack import DevPorts, dev_stack_env, dev_stack_processes
from harness.processes import (
    METRICS_PORT_ENVS,
    kill_all,
    start_wallet,
    stop,
    wait_until_serving,
    wallet_command,
)
from services.ledger.adapters import ledger_table as t
from tests.auth_support import AUTH_ENV, authenticated_channel
from wallet.v1 import command_pb2
from wallet_cli.local.dynamodb_local import (
    JAR_ENV,
    LOCAL_AWS_ENV,
    DynamoDBLocal,
    free_port,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

COMMAND_SERVICE = "wallet.v1.WalletCommand"
RECORD_METHOD = f"/{COMMAND_SERVICE}/RecordTransaction"
# A past instant, so no deposit in these tests trips the "not in the future" rule.
OCCURRED_AT = datetime(2024, 3, 1, 10, 7, 30, tzinfo=UTC)


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment without WALLET_* (except the jar location), AWS_* and
    DATABASE_URL, plus the test signing secret and `overrides`: children see only what the
    test gives them."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_")
        and (not name.startswith("WALLET_") or name == JAR_ENV)
        and name != "DATABASE_URL"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(AUTH_ENV)
    # High enough for the load tests' single client; low limits are tested on their own.
    env["WALLET_RATE_LIMIT"] = "10000/second"
    # Metrics on free ports: the defaults would collide between test processes and with a
    # developer's `wallet dev`.
    env.update({name: str(free_port()) for name in METRICS_PORT_ENVS})
    env.update(overrides)
    return env


@dataclass
class WalletProcess:
    """A running `wallet ...` command: its gRPC command port and its captured output."""

    process: "subprocess.Popen[bytes]"
    command_port: int
    stderr_path: Path
    stdout_path: Path
    _files: list[IO[bytes]] = field(default_factory=list)
    # Process trees seen while running (psutil objects remember their create time).
    known_tree: list[psutil.Process] = field(default_factory=list)

    @classmethod
    def start(
        cls, args: list[str], env: Mapping[str, str], command_port: int, log_dir: Path
    ) -> "WalletProcess":
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"{args[-1]}-{time.monotonic_ns()}"
        stdout_path, stderr_path = log_dir / f"{stamp}.stdout", log_dir / f"{stamp}.stderr"
        stdout, stderr = stdout_path.open("wb"), stderr_path.open("wb")
        process = start_wallet(args, env, stdout=stdout, stderr=stderr)
        return cls(process, command_port, stderr_path, stdout_path, [stdout, stderr])

    def wait_until_serving(self, timeout: float = 30.0) -> None:
        wait_until_serving(self.process, self.command_port, self.stderr_path, timeout)

    def channel(self) -> grpc.Channel:
        """A channel to its command port whose calls carry a token for every wallet."""
        return authenticated_channel(f"127.0.0.1:{self.command_port}")

    def tree(self) -> list[psutil.Process]:
        """The process and all its descendants, now (remembered for the clean-up)."""
        root = psutil.Process(self.process.pid)
        tree = [root, *root.children(recursive=True)]
        self.known_tree.extend(tree)
        return tree

    def stop(self, timeout: float = 15.0) -> int:
        """Stops the process (SIGTERM, then SIGKILL), kills any descendant left behind."""
        if self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                self.tree()
        try:
            return stop(self.process, timeout)
        finally:
            kill_all(self.known_tree)
            for file in self._files:
                file.close()

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def json_log(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """stderr as JSON lines. Strict: fails on any line that is not a JSON object;
        otherwise skips such lines."""
        lines = []
        for number, line in enumerate(self.stderr_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                if not strict:
                    continue
                raise AssertionError(f"stderr line {number} is not JSON: {line!r}") from error
            if isinstance(entry, dict):
                lines.append(entry)
            elif strict:
                raise AssertionError(f"stderr line {number} is not a JSON object: {line!r}")
        return lines

    def call_log(self, method: str, *, strict: bool = True) -> list[dict[str, Any]]:
        """The "call" lines the process logged for `method`, in order."""
        return [
            line
            for line in self.json_log(strict=strict)
            if line.get("message") == "call" and line.get("method") == method
        ]


@dataclass(frozen=True)
class Finished:
    """A `wallet ...` command that ran to its end."""

    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\n"
            f"stdout:\n{self.stdout[-3000:]}\n"
            f"stderr:\n{self.stderr[-3000:]}"
        )


def launch_command_service(
    dynamodb: DynamoDBLocal,
    table_name: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> WalletProcess:
    """`wallet serve command` on a free port of 127.0.0.1, against `dynamodb` and
    `table_name`, once its health check says SERVING (stopped again if it never does)."""
    port = free_port()
    service = WalletProcess.start(
        ["serve", "command"],
        child_env(
            **dynamodb.client_env(),
            WALLET_TABLE_NAME=table_name,
            WALLET_COMMAND_PORT=str(port),
            WALLET_LISTEN_HOST="127.0.0.1",
            **(env or {}),
        ),
        command_port=port,
        log_dir=log_dir,
    )
    try:
        service.wait_until_serving(timeout=30)
    except BaseException:
        service.stop()
        raise
    return service


class StartCommandService(Protocol):
    """The `start_command_service` fixture."""

    def __call__(
        self, dynamodb: DynamoDBLocal, table_name: str, env: Mapping[str, str] | None = None
    ) -> WalletProcess: ...


def dev_env(dev_dir: Path, ports: DevPorts) -> dict[str, str]:
    """The environment of a `wallet dev` that keeps its data in `dev_dir`."""
    return child_env(**dev_stack_env(dev_dir, ports))


@contextlib.contextmanager
def occupied_port() -> Iterator[int]:
    """A port of 127.0.0.1 something already listens on, for as long as the block runs."""
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port: int = occupant.getsockname()[1]
        yield port


def run_refused_dev(
    dev_dir: Path, ports: DevPorts
) -> tuple["subprocess.CompletedProcess[str]", list[psutil.Process]]:
    """Runs a `wallet dev` that is expected to refuse to start, then kills whatever of it
    is left running; returns its result and those leftovers (which should be none)."""
    try:
        result = subprocess.run(
            wallet_command("dev"),
            env=dev_env(dev_dir, ports),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        leftovers = dev_stack_processes(dev_dir)
        kill_all(leftovers)
    return result, leftovers


class StartDevStack(Protocol):
    """The `start_dev_stack` fixture."""

    def __call__(self, dev_dir: Path, ports: DevPorts) -> WalletProcess: ...


def deposit_request(
    wallet_id: str, request_id: str, amount: str, occurred_at: datetime = OCCURRED_AT
) -> command_pb2.RecordTransactionRequest:
    timestamp = Timestamp()
    timestamp.FromDatetime(occurred_at)
    return command_pb2.RecordTransactionRequest(
        wallet_id=wallet_id, request_id=request_id, occurred_at=timestamp, amount=amount
    )


def local_client(dynamodb: DynamoDBLocal) -> "DynamoDBClient":
    """A client for one DynamoDB Local instance, whatever this process's environment says."""
    return boto3.client(
        "dynamodb",
        endpoint_url=dynamodb.endpoint_url,
        region_name=LOCAL_AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


@dataclass(frozen=True)
class TableContents:
    """The ledger table's items, split into record items and aggregate items."""

    records: list[dict[str, Any]]
    aggregates: list[dict[str, Any]]

    def record_amounts(self) -> dict[str, Decimal]:
        """Amount by request id; fails if a request id has two record items."""
        amounts: dict[str, Decimal] = {}
        for item in self.records:
            request_id = item[t.REQUEST_ID]["S"]
            assert request_id not in amounts, f"two record items for {request_id}"
            amounts[request_id] = Decimal(item[t.AMOUNT]["N"])
        return amounts

    def record_totals(self) -> dict[str, tuple[Decimal, int]]:
        """(sum, count) of the record items, by wallet."""
        totals: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
        for item in self.records:
            amount, count = totals[item[t.WALLET_ID]["S"]]
            totals[item[t.WALLET_ID]["S"]] = (amount + Decimal(item[t.AMOUNT]["N"]), count + 1)
        return dict(totals)

    def aggregate_totals(self) -> dict[str, tuple[Decimal, int]]:
        """(sum, count) over the aggregate items, by wallet."""
        totals: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
        for item in self.aggregates:
            amount, count = totals[item[t.WALLET_ID]["S"]]
            totals[item[t.WALLET_ID]["S"]] = (
                amount + t.aggregate_amount(item),
                count + int(item[t.RECORD_COUNT]["N"]),
            )
        return dict(totals)


def scan_table(client: "DynamoDBClient", table_name: str) -> TableContents:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table_name, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    unknown = [item for item in items if item[t.KIND]["S"] not in (t.RECORD_KIND, t.AGGREGATE_KIND)]
    assert not unknown, f"items of unknown kind: {unknown}"
    return TableContents(
        records=[item for item in items if item[t.KIND]["S"] == t.RECORD_KIND],
        aggregates=[item for item in items if item[t.KIND]["S"] == t.AGGREGATE_KIND],
    )
