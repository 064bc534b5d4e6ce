"""A whole `wallet dev` stack started by a benchmark on free ports in a scratch data folder,
its read model's database, and its processes by role (for their memory and CPU)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.auth import BenchAuth
from benchmarks.memory import PeakSampler, rss_bytes
from benchmarks.processes import child_env
from benchmarks.sigterm import interrupted_by_sigterm
from harness.dev_stack import DevPorts, dev_stack_env, wait_until_ready
from harness.processes import start_wallet, tail
from harness.scratch_database import new_database
from harness.waiting import NotInTime

READY_TIMEOUT_SECONDS = 120.0
READY_POLL_SECONDS = 0.05
# `wallet dev` gives each child 15 s to stop, DynamoDB Local 10 s more.
STOP_TIMEOUT_SECONDS = 60.0
RSS_SAMPLE_SECONDS = 0.1

SUPERVISOR = "wallet dev (supervisor)"
POSTGRES = "PostgreSQL (embedded; postmaster + backends)"
OTHER = "other"
# A fragment of a child's command line -> its role in the stack.
CHILD_ROLES = {
    "serve gateway": "gateway",
    "serve command": "command service",
    "serve query": "query service",
    "update --follow": "updater",
    "DynamoDBLocal.jar": "DynamoDB Local (java)",
}
# The metrics ports of a stack that serves none.
METRICS_OFF = {"command_metrics": 0, "query_metrics": 0, "updater_metrics": 0}
# Unset in the stack's environment, so that only the benchmark decides its database.
DATABASE_ENVS = ("DATABASE_URL", "WALLET_DATABASE_URL", "WALLET_DATABASE_HOST")


class StackFailed(RuntimeError):
    """`wallet dev` exited early or printed no database URL; the message carries the end of
    its log. (One that exits before it is ready, or is not ready in time, fails the
    harness's wait: NotInTime.)"""


def run_on_stack(benchmark: str, run: Callable[[], int]) -> int:
    """The exit code of `run`, a benchmark that starts and stops its own stack: 130 when
    interrupted (Ctrl-C or SIGTERM), 2 when the stack failed, each said in one line."""
    try:
        with interrupted_by_sigterm():
            return run()
    except KeyboardInterrupt:
        print(
            f"wallet bench {benchmark}: interrupted; the stack is stopped and its database dropped",
            file=sys.stderr,
        )
        return 130
    except (StackFailed, NotInTime) as error:
        print(f"wallet bench {benchmark}: {error}", file=sys.stderr)
        return 2


@dataclass(frozen=True)
class Stack:
    """Where a `wallet dev` stack keeps its data, the ports it listens on, its read model's
    database (None: the stack's embedded PostgreSQL in `dev_dir`) and the auth its
    processes run with."""

    dev_dir: Path
    ports: DevPorts
    database_url: str | None
    auth: BenchAuth

    @property
    def gateway_url(self) -> str:
        return self.ports.gateway_url

    @property
    def query_address(self) -> str:
        return self.ports.query_address

    @property
    def dynamodb_endpoint(self) -> str:
        return self.ports.dynamodb_endpoint

    @property
    def pgdata(self) -> Path | None:
        """The embedded PostgreSQL's data folder, where `wallet dev` puts it."""
        return self.dev_dir / "postgres" if self.database_url is None else None

    def env(self) -> dict[str, str]:
        """Free ports, no metrics ports (child_env), the run's secret and a rate limit the
        benchmark never reaches: nothing collides with a developer's `wallet dev`."""
        env = child_env(
            {
                **dev_stack_env(self.dev_dir, self.ports),
                "WALLET_LISTEN_HOST": "127.0.0.1",
                **self.auth.env(),
            }
        )
        for name in DATABASE_ENVS:
            env.pop(name, None)
        if self.database_url is not None:
            env["DATABASE_URL"] = self.database_url
        return env


def new_stack(dev_dir: Path, database_url: str | None, auth: BenchAuth) -> Stack:
    """A stack on free ports that serves no metrics (as child_env has it)."""
    return Stack(dev_dir, DevPorts(**METRICS_OFF), database_url, auth)


@dataclass(frozen=True)
class RunningStack:
    process: "subprocess.Popen[bytes]"
    ready_seconds: float
    """From spawning `wallet dev` to the first GET /readyz answered 200."""


@contextmanager
def running(stack: Stack, log_path: Path) -> Iterator[RunningStack]:
    """`wallet dev`, yielded once it is ready; stopped when the block ends, however it ends.
    In its own session: a Ctrl-C of the benchmark then reaches only the benchmark, which
    stops the stack through `wallet dev` (SIGTERM), as a developer's Ctrl-C would."""
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = start_wallet(
            ["dev"], stack.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until_ready(
                process,
                stack.gateway_url,
                READY_TIMEOUT_SECONDS,
                logs=lambda: tail(log_path),
                request_timeout=1,
                poll_seconds=READY_POLL_SECONDS,
            )
            yield RunningStack(process, time.perf_counter() - started)
        finally:
            _stop(process)


def _stop(process: "subprocess.Popen[bytes]") -> None:
    """SIGTERM lets `wallet dev` stop its children and DynamoDB Local in order; one that
    does not stop in time is killed with its whole session, its children included."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def stack_database(admin_url: str | None, prefix: str) -> Iterator[str | None]:
    """A new, empty database on the server of `admin_url` (a URL that may create databases)
    for the stack's read model, dropped afterwards: the stack migrates it, as on any first
    start. None without a URL, for the stack to run its embedded PostgreSQL instead."""
    if admin_url is None:
        yield None
        return
    with new_database(admin_url, prefix) as url:
        yield url


def read_model_url(stack: Stack, log: Path) -> str:
    """The stack's database: the benchmark's, or its embedded server's as it printed it."""
    if stack.database_url is not None:
        return stack.database_url
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("PostgreSQL "):
            return line.split()[1]
    raise StackFailed(f"wallet dev did not print its PostgreSQL URL: {tail(log)}")


# --- the stack's processes ---------------------------------------------------------------


def stack_processes(stack_pid: int, pgdata: Path | None) -> dict[str, list[psutil.Process]]:
    """The stack's live processes by role: `wallet dev`, its descendants by command line,
    and the embedded PostgreSQL's postmaster with its backends (pg_ctl starts it in a
    session of its own, so it is no descendant of `wallet dev`)."""
    root = psutil.Process(stack_pid)
    roles: dict[str, list[psutil.Process]] = {SUPERVISOR: [root]}
    for child in root.children(recursive=True):
        # A child may exit between being listed and being read.
        with contextlib.suppress(psutil.NoSuchProcess):
            roles.setdefault(_role(" ".join(child.cmdline())), []).append(child)
    if pgdata is not None and (postmaster := _postmaster(pgdata)) is not None:
        roles[POSTGRES] = [postmaster, *postmaster.children()]
    return roles


def _role(cmdline: str) -> str:
    return next((role for part, role in CHILD_ROLES.items() if part in cmdline), OTHER)


def _postmaster(pgdata: Path) -> psutil.Process | None:
    """The postmaster named by the first line of its pid file; None while there is none."""
    try:
        return psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    except (OSError, IndexError, ValueError, psutil.NoSuchProcess):
        return None


def rss_by_role(stack_pid: int, pgdata: Path | None) -> dict[str, int]:
    """Resident bytes of each role of the stack now (a role of several processes: their
    sum). Raises psutil.NoSuchProcess once `wallet dev` has exited."""
    return {
        role: rss_bytes(processes) for role, processes in stack_processes(stack_pid, pgdata).items()
    }


def peak_rss_by_role(stack_pid: int, pgdata: Path | None) -> PeakSampler:
    """The largest resident memory seen of each role, sampled every RSS_SAMPLE_SECONDS
    while the context is open. The roles are looked up again at every sample: one listing
    of the process table, cheap next to the load."""
    return PeakSampler(
        lambda: rss_by_role(stack_pid, pgdata), RSS_SAMPLE_SECONDS, name="rss-by-role"
    )


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User plus system CPU seconds of `processes` so far; one that has exited counts 0."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total
