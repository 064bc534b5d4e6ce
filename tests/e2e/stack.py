"""The whole local stack (`wallet dev`) as real processes for the gateway's end-to-end tests,
and helpers to talk to it over HTTP.

Its fixtures are in tests/e2e/stack_fixtures.py, which test modules load as a plugin.
"""

import signal
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness.dev_stack import DevPorts, dev_stack_processes, wait_until_ready
from harness.processes import is_alive, kill_all, tail, wallet_command
from services.platform.settings import DevStackSettings, GatewaySettings
from tests.e2e.processes import (
    TableContents,
    WalletProcess,
    child_env,
    dev_env,
    local_client,
    scan_table,
)
from wallet_cli.local.dynamodb_local import DynamoDBLocal

# Generous: this machine is small and shared; these bound waits, they time nothing.
STARTUP_TIMEOUT = 150.0
STOP_TIMEOUT = 30.0
PROJECTION_TIMEOUT = 90.0
HTTP_TIMEOUT = 30.0
UPDATER_INTERVAL_SECONDS = "0.2"
PROBLEM_JSON = "application/problem+json"
TABLE_NAME: str = DevStackSettings.model_fields["table_name"].default  # what `wallet dev` uses
# How long the tests' client pools keep an idle connection: well below the gateway's
# keep-alive, as the load balancer's idle timeout is on AWS. A pool that kept connections as
# long as the gateway would now and then send a request on one the gateway is closing and
# fail (HTTP/1.1's own race; tests/e2e/test_gateway_keep_alive.py).
CLIENT_KEEPALIVE_EXPIRY = GatewaySettings.model_fields["gateway_keep_alive_seconds"].default / 2


@dataclass
class DevStack:
    """A running `wallet dev`."""

    process: WalletProcess
    dev_dir: Path
    ports: DevPorts
    database_url: str | None = None  # None: the embedded server in dev_dir
    # Every process seen in its tree or holding its dev folder (for the final check).
    seen: list[psutil.Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.ports.gateway_url

    @classmethod
    def start(cls, dev_dir: Path, log_dir: Path, database_url: str | None = None) -> "DevStack":
        """Starts `wallet dev` on free ports; without `database_url`, on its embedded
        PostgreSQL in `dev_dir`."""
        ports = DevPorts()
        extra = {
            "WALLET_UPDATER_INTERVAL_SECONDS": UPDATER_INTERVAL_SECONDS,
            "WALLET_LISTEN_HOST": "127.0.0.1",
            "WALLET_SHUTDOWN_GRACE_SECONDS": "5",
        }
        if database_url is not None:
            extra["DATABASE_URL"] = database_url
        env = {**dev_env(dev_dir, ports), **extra}
        process = WalletProcess.start(["dev"], env, command_port=ports.command, log_dir=log_dir)
        return cls(process, dev_dir, ports, database_url)

    def reconcile_records(self) -> subprocess.CompletedProcess[str]:
        """`wallet reconcile --records` on this stack's table and read model (a process)."""
        assert self.database_url is not None, "reconcile needs the stack's database URL"
        dynamodb = DynamoDBLocal(port=self.ports.dynamodb)
        env = child_env(**dynamodb.client_env(), DATABASE_URL=self.database_url)
        return subprocess.run(
            wallet_command("reconcile", "--records"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def table(self) -> TableContents:
        """Every item of the stack's ledger table."""
        return scan_table(local_client(DynamoDBLocal(port=self.ports.dynamodb)), TABLE_NAME)

    def wait_until_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Polls GET /readyz until 200; fails early when `wallet dev` exits."""
        wait_until_ready(
            self.process.process,
            self.base_url,
            timeout,
            logs=self.logs,
            request_timeout=5,
            poll_seconds=0.25,
        )

    def logs(self) -> str:
        return (
            f"--- stdout\n{tail(self.process.stdout_path)}\n"
            f"--- stderr\n{tail(self.process.stderr_path, 6000)}"
        )

    def remember_processes(self) -> list[psutil.Process]:
        """The stack's tree (grandchildren included) and the processes holding its dev
        folder (e.g. a daemonised embedded PostgreSQL), now."""
        found: list[psutil.Process] = []
        with suppress(psutil.Error):
            found.extend(self.process.tree())
        found.extend(dev_stack_processes(self.dev_dir))
        self.seen.extend(found)
        return found

    def terminate(self, timeout: float = STOP_TIMEOUT) -> tuple[int | None, list[psutil.Process]]:
        """SIGTERM, then waits; SIGKILL only on timeout. Returns (exit code or None when it
        had to be killed, what was still running afterwards). What was still running is
        killed before returning, so nothing outlives the test either way."""
        popen = self.process.process
        if popen.poll() is None:
            self.remember_processes()
            popen.send_signal(signal.SIGTERM)
        exit_code: int | None
        try:
            exit_code = popen.wait(timeout)
        except subprocess.TimeoutExpired:
            exit_code = None
        survivors: list[psutil.Process] = []
        for process in [*self.seen, *dev_stack_processes(self.dev_dir)]:
            if process.pid != popen.pid and is_alive(process) and process not in survivors:
                survivors.append(process)
        self.process.stop(timeout=5)  # kills the process and its known tree if still there
        kill_all(survivors)
        return exit_code, survivors


def new_wallet(prefix: str) -> str:
    """A wallet id no other test (or run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def new_key(prefix: str = "key") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def record_json(datetime_text: str, amount: str, *, amount_as_number: bool = False) -> str:
    """A record body written by hand, so JSON numbers go out exactly as written."""
    amount_json = amount if amount_as_number else f'"{amount}"'
    return f'{{"datetime": "{datetime_text}", "amount": {amount_json}}}'


def post_json(
    client: httpx.Client, path: str, content: str | bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(
        path, content=content, headers={"Content-Type": "application/json", **(headers or {})}
    )


def parse_utc(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, (response.status_code, response.text)
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type == PROBLEM_JSON, (media_type, response.text)
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("type"), str), body
    assert isinstance(body.get("title"), str), body
    assert body.get("title"), body
    assert body.get("status") == status, body
    return body


def problem_fields(body: dict[str, Any]) -> set[str]:
    """The field names a problem's `errors` list names."""
    errors = body.get("errors", [])
    assert isinstance(errors, list), body
    return {str(error["field"]) for error in errors}


def read_as_of(client: httpx.Client) -> datetime | None:
    """When the updater last finished a pass (the read model's as_of)."""
    response = client.get("/v1/wallets/as-of-probe/balance")
    assert response.status_code == 200, response.text
    as_of = response.json()["as_of"]
    return None if as_of is None else parse_utc(as_of)


def wait_for_projection(
    client: httpx.Client, after: datetime, timeout: float = PROJECTION_TIMEOUT
) -> None:
    """Returns once an updater pass that began after `after` has finished: as_of first
    passes `after` (that pass may have begun earlier), then advances once more (passes run
    one after another, so that one began after the previous one ended). Everything written
    before `after` is then in the read model."""
    deadline = time.monotonic() + timeout
    first: datetime | None = None
    while True:
        as_of = read_as_of(client)
        if as_of is not None and as_of > after:
            if first is None:
                first = as_of
            elif as_of > first:
                return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the read model's as_of ({as_of}) did not get past {after} twice "
                f"within {timeout} s: is the updater running?"
            )
        time.sleep(0.1)


def now() -> datetime:
    return datetime.now(UTC)
