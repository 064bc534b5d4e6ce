"""`wallet ...` commands as child processes of a test or a benchmark: started from the
project's folder, waited for until their gRPC health check says SERVING, and always stopped
again (SIGTERM, then SIGKILL). What environment a child sees is each side's own choice
(tests/e2e/processes.py, benchmarks/processes.py)."""

import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.waiting import NotInTime, wait_until
from services.platform.settings import PROJECT_ROOT

SERVING: int = health_pb2.HealthCheckResponse.SERVING
SERVING_POLL_SECONDS = 0.1
STOP_TIMEOUT_SECONDS = 15.0
# The processes that serve metrics over HTTP, each on the port this variable names.
METRICS_PORT_ENVS = (
    "WALLET_COMMAND_METRICS_PORT",
    "WALLET_QUERY_METRICS_PORT",
    "WALLET_UPDATER_METRICS_PORT",
)


def wallet_command(*args: str) -> list[str]:
    """The command line of `wallet *args`, run by this interpreter."""
    return [sys.executable, "-m", "wallet_cli", *args]


def start_wallet(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
    start_new_session: bool = False,
) -> "subprocess.Popen[bytes]":
    """`wallet *args` started from the project's folder with exactly `env`."""
    return subprocess.Popen(
        wallet_command(*args),
        env=dict(env),
        cwd=PROJECT_ROOT,
        stdout=stdout,
        stderr=stderr,
        start_new_session=start_new_session,
    )


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file ("" while there is none)."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def health_status(port: int, service: str = "", timeout: float = 1.0) -> int | None:
    """The health status the process on `port` reports for `service`, None if no answer."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
        status: int = response.status
        return status


def wait_until_serving(
    process: "subprocess.Popen[bytes]", port: int, log: Path, timeout: float
) -> None:
    """Polls the gRPC health check until SERVING; fails early when the process exits."""

    def serving() -> bool:
        if process.poll() is not None:
            raise NotInTime(
                f"{process.args!r} exited with {process.returncode} before serving:\n{tail(log)}"
            )
        return health_status(port) == SERVING

    wait_until(
        serving,
        lambda: f"{process.args!r} SERVING on {port}:\n{tail(log)}",
        timeout,
        SERVING_POLL_SECONDS,
    )


def stop(process: "subprocess.Popen[bytes]", timeout: float = STOP_TIMEOUT_SECONDS) -> int:
    """SIGTERM, then SIGKILL when it does not exit within `timeout`; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def is_alive(process: psutil.Process) -> bool:
    """True while the process runs (a zombie or a reused pid counts as gone)."""
    try:
        alive: bool = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
    return alive


def kill_all(processes: Iterable[psutil.Process]) -> None:
    for process in processes:
        if is_alive(process):
            try:
                process.kill()
            except psutil.Error:
                continue


@contextmanager
def wallet_process(
    args: list[str],
    env: Mapping[str, str],
    log_path: Path,
    grpc_port: int | None = None,
    serving_timeout: float = 60.0,
) -> Iterator["subprocess.Popen[bytes]"]:
    """`wallet *args` with its stdout and stderr in `log_path`; with `grpc_port`, yielded
    once its health check says SERVING. Stopped (SIGTERM, then SIGKILL) when the block ends."""
    with log_path.open("wb") as log:
        process = start_wallet(args, env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if grpc_port is not None:
                wait_until_serving(process, grpc_port, log_path, serving_timeout)
            yield process
        finally:
            stop(process)
