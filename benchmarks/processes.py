"""`wallet ...` commands as child processes of a benchmark, always stopped again."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.platform.settings import PROJECT_ROOT

SERVING_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


# A developer's `wallet dev` may hold the default metrics ports: benchmark children serve
# none (the counters still run; only their HTTP endpoint is off).
METRICS_PORTS_OFF = {
    "WALLET_COMMAND_METRICS_PORT": "0",
    "WALLET_QUERY_METRICS_PORT": "0",
    "WALLET_UPDATER_METRICS_PORT": "0",
}
# Benchmarks sign their own tokens (benchmarks/auth.py): no key source but theirs.
_DROPPED_ENV = ("WALLET_AUTH_JWKS_URL",)


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment (so the DynamoDB Local it points at), without metrics
    ports or a JWKS URL, plus `overrides`."""
    inherited = {name: value for name, value in os.environ.items() if name not in _DROPPED_ENV}
    return {**inherited, "PYTHONUNBUFFERED": "1", **METRICS_PORTS_OFF, **overrides}


@contextmanager
def wallet_process(
    args: list[str], env: Mapping[str, str], log_path: Path, grpc_port: int | None = None
) -> Iterator["subprocess.Popen[bytes]"]:
    """`wallet *args` with its output in `log_path`; with `grpc_port`, yielded once its
    health check says SERVING. Stopped (SIGTERM, then SIGKILL) when the block ends."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "wallet_cli", *args],
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if grpc_port is not None:
                _wait_until_serving(process, grpc_port, log_path)
            yield process
        finally:
            _stop(process)


def _wait_until_serving(process: "subprocess.Popen[bytes]", port: int, log_path: Path) -> None:
    deadline = time.monotonic() + SERVING_TIMEOUT_SECONDS
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{process.args!r} exited with {process.returncode}: {_tail(log_path)}"
                )
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            except grpc.RpcError:
                status = None
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.1)
    raise RuntimeError(f"{process.args!r} not SERVING after {SERVING_TIMEOUT_SECONDS:.0f} s")


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-2000:]


def _stop(process: "subprocess.Popen[bytes]") -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
