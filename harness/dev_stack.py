"""A whole local stack (`wallet dev`) as tests and benchmarks start it: the ports it listens
on, its environment, waiting until its gateway is ready, and every process it started, even
daemonised ones, for stopping them all."""

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from harness.processes import is_alive
from harness.waiting import POLL_SECONDS, NotInTime, wait_until
from wallet_cli.local.dev_stack import DEV_DIR_ENV, DYNAMODB_PORT_ENV
from wallet_cli.local.dynamodb_local import free_port


@dataclass(frozen=True)
class DevPorts:
    """The ports `wallet dev` listens on, by default all free ones (a metrics port of 0:
    that process serves no metrics)."""

    dynamodb: int = field(default_factory=free_port)
    command: int = field(default_factory=free_port)
    query: int = field(default_factory=free_port)
    gateway: int = field(default_factory=free_port)
    command_metrics: int = field(default_factory=free_port)
    query_metrics: int = field(default_factory=free_port)
    updater_metrics: int = field(default_factory=free_port)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway}"

    @property
    def query_address(self) -> str:
        return f"127.0.0.1:{self.query}"

    @property
    def dynamodb_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.dynamodb}"

    def env(self) -> dict[str, str]:
        return {
            DYNAMODB_PORT_ENV: str(self.dynamodb),
            "WALLET_COMMAND_PORT": str(self.command),
            "WALLET_QUERY_PORT": str(self.query),
            "WALLET_GATEWAY_PORT": str(self.gateway),
            "WALLET_COMMAND_METRICS_PORT": str(self.command_metrics),
            "WALLET_QUERY_METRICS_PORT": str(self.query_metrics),
            "WALLET_UPDATER_METRICS_PORT": str(self.updater_metrics),
        }


def dev_stack_env(dev_dir: Path, ports: DevPorts) -> dict[str, str]:
    """What a `wallet dev` keeping its data in `dev_dir` and listening on `ports` is told
    (on top of the environment each side gives its children)."""
    return {DEV_DIR_ENV: str(dev_dir), **ports.env()}


def wait_until_ready(
    process: "subprocess.Popen[bytes]",
    base_url: str,
    timeout: float,
    *,
    logs: Callable[[], str],
    request_timeout: float,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Polls the gateway's GET /readyz until 200 (refused until uvicorn listens; 503 until
    both gRPC services are SERVING); fails early when `process` (the stack or the gateway)
    exits. logs() ends either failure's message."""
    last = "no answer"

    def ready() -> bool:
        nonlocal last
        if process.poll() is not None:
            raise NotInTime(
                f"{process.args!r} exited with {process.returncode} before ready:\n{logs()}"
            )
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=request_timeout)
        except httpx.TransportError as error:
            last = repr(error)
            return False
        last = f"{response.status_code} {response.text}"
        return response.status_code == 200

    wait_until(ready, lambda: f"{base_url} ready ({last}):\n{logs()}", timeout, poll_seconds)


def dev_stack_processes(dev_dir: Path) -> list[psutil.Process]:
    """Live processes that belong to a `wallet dev` on `dev_dir`, even orphaned or
    daemonised ones: they inherited its WALLET_DEV_DIR or name a path inside it."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid() or not is_alive(process):
                continue
            if process.environ().get(DEV_DIR_ENV) == str(dev_dir) or any(
                str(dev_dir) in argument for argument in process.cmdline()
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def describe(processes: list[psutil.Process]) -> list[str]:
    """Each process's pid and command line, for a failure's message."""
    described = []
    for process in processes:
        try:
            described.append(f"{process.pid} {' '.join(process.cmdline())[:200]}")
        except psutil.Error:
            described.append(f"{process.pid} (gone)")
    return described
