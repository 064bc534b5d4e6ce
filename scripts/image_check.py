"""`make image-check`: builds the Dockerfile with buildah and runs every process from it.

No Docker engine is needed, only root, buildah and debootstrap (Debian: apt-get install -y
buildah debootstrap), and what `make test` needs (the venv, node_modules for DynamoDB
Local, Java, PostgreSQL on 127.0.0.1:5432 or $WALLET_TEST_DATABASE_URL).

1. The base. No registry serves python:3.11-slim-bookworm here, so a stand-in takes its
   name in buildah's local storage: Debian bookworm (`debootstrap --variant=minbase`) with
   Debian's Python 3.11 (python3, python3-venv, python-is-python3 for `python`, and
   ca-certificates, plus this machine's CA bundle). The root file system is cached as a tar
   under build/image-check/ and the image is reused while its label says it came from the
   same recipe and bundle.
2. `buildah bud --isolation chroot --pull=never --layers --force-rm --format docker` on the
   repository's Dockerfile (docker format keeps the HEALTHCHECK); pip in the build gets
   its packages from PyPI, checked against requirements/image.lock's hashes.
3. The image: its user, entry point and health check as the Dockerfile says; its venv holds
   exactly image.lock's pins (plus pip, setuptools and the project).
4. Each process runs from the image in a working container of its own (`buildah run
   --isolation chroot`: the host's network, so 127.0.0.1 is shared both ways), configured
   as terraform/ecs.tf configures the tasks (WALLET_DATABASE_* for PostgreSQL, an HS256
   secret instead of the JWKS), against a DynamoDB Local and a new database:
   `wallet create-table` and `wallet migrate` (one-off), then `wallet serve command`,
   `serve query` and `serve gateway`, each until the image's health check script answers
   healthy (run in its container, with the process name as the task definitions pass it)
   and the host's own probe agrees (gRPC health, GET /healthz); then a deposit through the
   gateway, one `wallet update` pass (the scheduled task), the balance and history through
   the gateway, and `wallet update --follow` until its /metrics answers. Every served
   process must exit 0 on SIGTERM (the gateway: or die of the SIGTERM uvicorn re-raises
   after its graceful shutdown).

Everything it starts is stopped, its containers removed and its database dropped; the
images stay (a second run reuses the base and the build's cached layers). Logs:
build/image-check/logs/. Exit status 0 when every check passed.
"""

import argparse
import contextlib
import functools
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import grpc
import psutil
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from services.platform.auth.tokens import ALL_WALLETS, mint_token
from services.platform.settings import PROJECT_ROOT, AuthSettings
from wallet_cli.local.dynamodb_local import DynamoDBLocal, free_port

WORK = PROJECT_ROOT / "build" / "image-check"
LOGS = WORK / "logs"
IMAGE = "localhost/wallet-ledger:image-check"
CONTAINER_PREFIX = "wallet-image-check-"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BASE_LABEL = "wallet.image-check.base"
# Bump when the stand-in's recipe changes in a way its inputs below do not show.
BASE_RECIPE = 1
BASE_ENV = ("LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The stand-in trusts what this machine trusts (where HTTPS goes through an inspecting proxy,
# pip in the build would otherwise refuse PyPI's certificate).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ADMIN_URL_ENV = "WALLET_TEST_DATABASE_URL"  # as for the tests (tests/conftest.py)
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HEALTHCHECK = ["python", "/opt/wallet/healthcheck.py"]
SERVED = ("command", "query", "gateway")
START_TIMEOUT = 90.0
WALLET = "image-check-wallet"


# --- reporting --------------------------------------------------------------------------


@dataclass
class Report:
    results: list[tuple[str, bool, str, float]] = field(default_factory=list)

    def add(self, step: str, ok: bool, detail: str = "", seconds: float = 0.0) -> None:
        self.results.append((step, ok, detail, seconds))
        mark = "ok  " if ok else "FAIL"
        print(f"image-check: {mark} {step} ({seconds:.1f} s){': ' + detail if detail else ''}")
        sys.stdout.flush()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Times a step; it passes unless it raises (the list collects a detail)."""
        detail: list[str] = []
        started = time.monotonic()
        try:
            yield detail
        except Exception as error:
            self.add(name, False, f"{error}", time.monotonic() - started)
            raise
        self.add(name, True, "; ".join(detail), time.monotonic() - started)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(ok for _, ok, _, _ in self.results)

    def summary(self) -> str:
        lines = ["", "image-check summary:"]
        for step, ok, detail, seconds in self.results:
            lines.append(f"  {'ok  ' if ok else 'FAIL'} {seconds:7.1f} s  {step}")
            if detail and not ok:
                lines.append(f"                     {detail[:2000]}")
        return "\n".join(lines)


class CheckFailed(Exception):
    """A check found the image wrong (the message says how)."""


# --- commands ---------------------------------------------------------------------------


def run(
    command: Sequence[str], *, timeout: float | None = None, check: bool = True
) -> "subprocess.CompletedProcess[str]":
    print("+ " + " ".join(command), flush=True)
    result = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise CheckFailed(
            f"{' '.join(command[:4])}... exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def run_logged(command: Sequence[str], log: Path) -> None:
    """Runs `command`, its output on this terminal and in `log`; fails on non-zero exit."""
    print("+ " + " ".join(command), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as file:
        process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            file.write(line)
        returncode = process.wait()
    if returncode != 0:
        raise CheckFailed(f"{command[0]} {command[1]} exited {returncode}; see {log}")


def require_tools() -> None:
    if os.geteuid() != 0:
        raise CheckFailed("run as root: buildah and debootstrap need it")
    missing = [tool for tool in ("buildah", "debootstrap", "tar") if shutil.which(tool) is None]
    if missing:
        raise CheckFailed(
            f"not installed: {', '.join(missing)} (apt-get install -y buildah debootstrap)"
        )


# --- the base image ---------------------------------------------------------------------


def qualified(reference: str) -> str:
    """The fully qualified name Docker reads a short image name as."""
    first, _, rest = reference.partition("/")
    if not rest:
        return f"docker.io/library/{reference}"
    if "." in first or ":" in first or first == "localhost":
        return reference
    return f"docker.io/{reference}"


def dockerfile_base(dockerfile: Path) -> tuple[str, Path]:
    """The Dockerfile's one base image (every FROM that is not a stage) without a digest,
    and the Dockerfile to build: itself, or a copy without the digest (the stand-in cannot
    have the real image's digest)."""
    text = dockerfile.read_text()
    stages: set[str] = set()
    bases: set[str] = set()
    for match in re.finditer(
        r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I
    ):
        image, stage = match.group(1), match.group(2)
        if image.lower() not in stages:
            bases.add(image)
        if stage:
            stages.add(stage.lower())
    if len(bases) != 1:
        raise CheckFailed(f"expected one base image in the Dockerfile, found {sorted(bases)}")
    (base,) = bases
    name = base.split("@", 1)[0]
    if name == base:
        return name, dockerfile
    copy = WORK / "Dockerfile.nodigest"
    copy.write_text(text.replace(base, name))
    return name, copy


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses for bookworm's main component."""
    if explicit := os.environ.get("IMAGE_CHECK_MIRROR"):
        return explicit
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for line in text.splitlines():  # one-line format, without [options]
            words = re.sub(r"\[[^]]*\]", " ", line).split()
            if len(words) >= 4 and words[0] == "deb" and SUITE in words[2:3]:
                uri = words[1]
                if "security" not in uri and "main" in words[3:]:
                    return uri.rstrip("/")
        for stanza in re.split(r"\n\s*\n", text):  # deb822 format
            fields: dict[str, str] = dict(
                (key.strip().lower(), value.strip())
                for key, _, value in (
                    line.partition(":") for line in stanza.splitlines() if ":" in line
                )
                if not key.startswith("#")
            )
            uris, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
            components = fields.get("components", "").split()
            if uris and SUITE in suites and "main" in components and "security" not in uris[0]:
                return uris[0].rstrip("/")
    return DEFAULT_MIRROR


def base_key() -> str:
    recipe = {
        "suite": SUITE,
        "variant": "minbase",
        "packages": BASE_PACKAGES,
        "env": BASE_ENV,
        "recipe": BASE_RECIPE,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def image_config(reference: str) -> dict[str, Any] | None:
    result = run(["buildah", "inspect", "--type", "image", reference], check=False)
    if result.returncode != 0:
        return None
    inspected: dict[str, Any] = json.loads(result.stdout)
    return inspected


def ensure_base(reference: str, detail: list[str]) -> None:
    key = base_key()
    bundle = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
    image_key = f"{key}-{hashlib.sha256(bundle).hexdigest()[:8]}"
    existing = image_config(reference)
    if existing is not None:
        labels = (existing.get("OCIv1", {}).get("config") or {}).get("Labels") or {}
        if labels.get(BASE_LABEL) == image_key:
            detail.append(f"reused {reference} (stand-in {image_key}) from buildah's storage")
            return
        if labels.get(BASE_LABEL) is None:
            raise CheckFailed(
                f"{reference} in buildah's storage is not this script's stand-in: "
                f"remove it (buildah rmi {reference}) or build elsewhere"
            )
    tarball = WORK / f"base-{key}.tar"
    if tarball.exists():
        detail.append(f"imported the cached root file system {tarball.name}")
    else:
        bootstrap(tarball)
        detail.append(f"debootstrapped {SUITE} into {tarball.name}")
    container = run(["buildah", "from", "scratch"]).stdout.strip()
    try:
        run(["buildah", "add", "--quiet", container, str(tarball), "/"], timeout=600)
        if bundle:
            target = f"/{HOST_CA_BUNDLE.relative_to('/')}"
            run(["buildah", "copy", "--quiet", container, str(HOST_CA_BUNDLE), target])
            detail.append(f"with this machine's CA bundle {HOST_CA_BUNDLE}")
        config = ["buildah", "config", "--label", f"{BASE_LABEL}={image_key}", "--cmd", "python3"]
        for variable in BASE_ENV:
            config += ["--env", variable]
        run([*config, container])
        run(["buildah", "commit", "--quiet", "--rm", container, reference], timeout=600)
    except BaseException:
        run(["buildah", "rm", container], check=False)
        raise


def bootstrap(tarball: Path) -> None:
    root = WORK / "rootfs.partial"
    if root.exists():
        shutil.rmtree(root)
    mirror = apt_mirror()
    run_logged(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(root),
            mirror,
        ],
        LOGS / "debootstrap.log",
    )
    python = root / "usr/bin/python"
    if not python.is_symlink() or os.readlink(python) != "python3":
        raise CheckFailed("python-is-python3 did not make /usr/bin/python -> python3")
    version = run(["chroot", str(root), "python", "--version"]).stdout.strip()
    if not version.startswith("Python 3.11."):
        raise CheckFailed(f"the stand-in's python is {version}, not 3.11")
    # As the slim images: no package lists, no apt cache.
    for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for path in (root / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    partial = tarball.with_suffix(".partial")
    run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "-C",
            str(root),
            "-cf",
            str(partial),
            ".",
        ],
        timeout=600,
    )
    partial.rename(tarball)
    shutil.rmtree(root)


# --- the built image --------------------------------------------------------------------


def check_image_config(detail: list[str]) -> None:
    inspected = image_config(IMAGE)
    if inspected is None:
        raise CheckFailed(f"{IMAGE} is not in buildah's storage")
    config = inspected["Docker"]["config"]
    healthcheck = (config.get("Healthcheck") or {}).get("Test")
    expected = {
        "User": "10001:10001",
        "Entrypoint": ["wallet"],
        "Healthcheck": ["CMD", *HEALTHCHECK],
    }
    actual = {
        "User": config.get("User"),
        "Entrypoint": config.get("Entrypoint"),
        "Healthcheck": healthcheck,
    }
    if actual != expected:
        raise CheckFailed(f"image config {actual}, expected {expected}")
    size = run(["buildah", "images", "--format", "{{.Size}}", IMAGE]).stdout.strip()
    detail.append(f"user 10001, entry point wallet, HEALTHCHECK {HEALTHCHECK}, {size}")


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line):
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_installed_pins(container: str, detail: list[str]) -> None:
    """The image's venv holds image.lock's pins exactly, and nothing else but the tools."""
    freeze = run(buildah_run(container, ["python", "-m", "pip", "list", "--format=freeze"]))
    installed = {
        canonical(name): version
        for name, _, version in (
            line.partition("==") for line in freeze.stdout.splitlines() if "==" in line
        )
    }
    pins = lock_pins(PROJECT_ROOT / "requirements" / "image.lock")
    wrong = {name: (installed.get(name), pin) for name, pin in pins.items()}
    wrong = {name: pair for name, pair in wrong.items() if pair[0] != pair[1]}
    extra = sorted(set(installed) - set(pins) - {"pip", "setuptools", "wallet-ledger"})
    if wrong or extra:
        raise CheckFailed(f"(installed, image.lock) differ: {wrong}; not in the lock: {extra}")
    detail.append(
        f"{len(pins)} packages at image.lock's pins, pip {installed.get('pip')}, "
        f"no pgserver, no test tools"
    )


def check_no_benchmarks(container: str, detail: list[str]) -> None:
    """The benchmarks are a source checkout's: not importable in the image, and `wallet bench`
    exits 2 saying how to get them."""
    bench = run(buildah_run(container, ["wallet", "bench", "read"]), check=False)
    if bench.returncode != 2 or "pip install -e '.[bench]'" not in bench.stderr:
        raise CheckFailed(f"wallet bench read: exit {bench.returncode}, {bench.stderr[-300:]!r}")
    detail.append(bench.stderr.strip())


# --- running the image ------------------------------------------------------------------


def buildah_run(
    container: str, command: Sequence[str], env: dict[str, str] | None = None
) -> list[str]:
    options = [f"--env={name}={value}" for name, value in (env or {}).items()]
    return ["buildah", "run", "--isolation", "chroot", *options, container, "--", *command]


def remove_containers() -> None:
    listed = run(["buildah", "containers", "--format", "{{.ContainerName}}"], check=False)
    for name in listed.stdout.split():
        if name.startswith(CONTAINER_PREFIX):
            run(["buildah", "rm", name], check=False)


def new_container(name: str) -> str:
    full = CONTAINER_PREFIX + name
    run(["buildah", "from", "--pull=never", "--name", full, IMAGE])
    return full


@dataclass
class Served:
    """One `wallet ...` process running in its working container."""

    name: str
    container: str
    args: list[str]
    process: "subprocess.Popen[bytes]"
    log_path: Path
    log: IO[bytes]

    @classmethod
    def start(cls, name: str, container: str, args: list[str], env: dict[str, str]) -> "Served":
        log_path = LOGS / f"{name}.log"
        log = log_path.open("wb")
        command = buildah_run(container, ["wallet", *args], env)
        print("+ " + " ".join(command[:6]) + f" ... -- wallet {' '.join(args)}", flush=True)
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return cls(name, container, args, process, log_path, log)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def wallet_process(self) -> psutil.Process | None:
        """The `wallet` Python process that buildah started in the container. (buildah's
        chroot helper above it takes the same command line; a signal to it kills the
        process with SIGKILL.)"""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    cmdline = child.cmdline()
                    if (
                        not child.name().startswith(("memfd:", "buildah"))
                        and any(part.endswith("/wallet") for part in cmdline)
                        and cmdline[-len(self.args) :] == self.args
                    ):
                        return child
        return None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to the wallet process (as ECS stops a task), then everything is killed;
        the exit status buildah passed on, None if it had to be killed."""
        if self.alive():
            target = self.wallet_process()
            if target is not None:
                with contextlib.suppress(psutil.Error):
                    target.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                self.log.close()
                return None
        self.log.close()
        return self.process.returncode


def wait_for(
    what: str, probe: Callable[[], bool], served: Served, timeout: float = START_TIMEOUT
) -> float:
    started = time.monotonic()
    last_error = ""
    while time.monotonic() - started < timeout:
        if not served.alive():
            raise CheckFailed(
                f"{served.name} exited {served.process.returncode} before {what}:\n"
                f"{served.log_tail()}"
            )
        try:
            if probe():
                return time.monotonic() - started
        except Exception as error:
            last_error = f"{type(error).__name__}: {error}"
        time.sleep(0.5)
    raise CheckFailed(
        f"{served.name}: no {what} after {timeout:.0f} s ({last_error}):\n{served.log_tail()}"
    )


def grpc_serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    return http_request("GET", port, path, token=token)


def http_request(
    method: str,
    port: int,
    path: str,
    *,
    token: str | None = None,
    body: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class Ports:
    command: int = field(default_factory=free_port)
    query: int = field(default_factory=free_port)
    gateway: int = field(default_factory=free_port)
    command_metrics: int = field(default_factory=free_port)
    query_metrics: int = field(default_factory=free_port)
    updater_metrics: int = field(default_factory=free_port)


@contextlib.contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the admin URL's server, dropped afterwards."""
    name = f"wallet_image_check_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def task_env(
    dynamodb: DynamoDBLocal, admin_url: str, database_name: str, ports: Ports, secret: str
) -> dict[str, str]:
    """The processes' environment: terraform/ecs.tf's settings, pointed at this machine."""
    url = make_url(admin_url)
    env = {
        **dynamodb.client_env(),
        "WALLET_TABLE_NAME": "wallet-image-check",
        "WALLET_LISTEN_HOST": "127.0.0.1",
        "WALLET_COMMAND_PORT": str(ports.command),
        "WALLET_QUERY_PORT": str(ports.query),
        "WALLET_GATEWAY_PORT": str(ports.gateway),
        "WALLET_COMMAND_METRICS_PORT": str(ports.command_metrics),
        "WALLET_QUERY_METRICS_PORT": str(ports.query_metrics),
        "WALLET_UPDATER_METRICS_PORT": str(ports.updater_metrics),
        "WALLET_COMMAND_ADDRESS": f"127.0.0.1:{ports.command}",
        "WALLET_QUERY_ADDRESS": f"127.0.0.1:{ports.query}",
        "WALLET_AUTH_HS256_SECRET": secret,
        "WALLET_DATABASE_HOST": url.host or "127.0.0.1",
        "WALLET_DATABASE_PORT": str(url.port or 5432),
        "WALLET_DATABASE_NAME": database_name,
        "WALLET_DATABASE_USER": url.username or "postgres",
        "WALLET_LOG_LEVEL": "INFO",
    }
    if url.password:
        env["WALLET_DATABASE_PASSWORD"] = str(url.password)
    return env


def check_processes(report: Report) -> None:
    admin_url = os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)
    secret = secrets.token_urlsafe(48)
    ports = Ports()
    served: dict[str, Served] = {}
    with contextlib.ExitStack() as stack:
        with report.step("DynamoDB Local and a new PostgreSQL database on the host") as detail:
            dynamodb = stack.enter_context(DynamoDBLocal())
            database_name = stack.enter_context(database(admin_url))
            detail.append(f"{dynamodb.endpoint_url}, database {database_name}")
        env = task_env(dynamodb, admin_url, database_name, ports, secret)
        stack.callback(remove_containers)

        def stop_all() -> None:
            for process in served.values():
                process.stop(timeout=5)

        stack.callback(stop_all)
        tasks = new_container("tasks")

        with report.step("image: the venv holds image.lock's pins") as detail:
            check_installed_pins(tasks, detail)
        with report.step("image: no benchmarks; `wallet bench` says why") as detail:
            check_no_benchmarks(tasks, detail)
        with report.step("image: runs as uid 10001 with a writable /tmp") as detail:
            uid = run(buildah_run(tasks, ["id", "-u"])).stdout.strip()
            run(buildah_run(tasks, ["python", "-c", "import tempfile; tempfile.mkstemp()"]))
            if uid != "10001":
                raise CheckFailed(f"runs as uid {uid}")
            detail.append("uid 10001")

        for args in (["create-table"], ["migrate"]):
            with report.step(f"wallet {' '.join(args)} (one-off task)") as detail:
                result = run(buildah_run(tasks, ["wallet", *args], env), timeout=120)
                detail.append(result.stdout.strip().splitlines()[-1] if result.stdout else "")

        for name in SERVED:
            container = new_container(name)
            served[name] = Served.start(name, container, ["serve", name], env)
        for name in SERVED:
            process = served[name]
            with report.step(f"wallet serve {name}: health") as detail:
                if name == "gateway":
                    waited = wait_for(
                        "GET /healthz 200",
                        lambda: http_get(ports.gateway, "/healthz")[0] == 200,
                        process,
                    )
                    detail.append(f"GET /healthz 200 after {waited:.1f} s")
                else:
                    port = ports.command if name == "command" else ports.query
                    waited = wait_for(
                        "gRPC SERVING",
                        functools.partial(grpc_serving, port),
                        process,
                    )
                    detail.append(f"gRPC health SERVING after {waited:.1f} s")
                result = run(buildah_run(process.container, [*HEALTHCHECK, name], env), check=False)
                if result.returncode != 0:
                    raise CheckFailed(
                        f"the image's health check exited {result.returncode}: "
                        f"{result.stdout}{result.stderr}"
                    )
                detail.append(f"`{' '.join(HEALTHCHECK)} {name}` in the container: exit 0")
                if name != "gateway":
                    metrics_port = (
                        ports.command_metrics if name == "command" else ports.query_metrics
                    )
                    status, _ = http_get(metrics_port, "/metrics")
                    if status != 200:
                        raise CheckFailed(f"GET /metrics on {metrics_port}: {status}")
                    detail.append("GET /metrics 200")

        with report.step("gateway: ready, deposit, update pass, balance and history") as detail:
            detail.extend(smoke(ports, env, tasks, secret))

        with report.step("wallet update --follow: metrics") as detail:
            updater = Served.start("updater", new_container("updater"), ["update", "--follow"], env)
            served["updater"] = updater
            waited = wait_for(
                "GET /metrics 200",
                lambda: http_get(ports.updater_metrics, "/metrics")[0] == 200,
                updater,
            )
            detail.append(f"GET /metrics 200 after {waited:.1f} s")

        for name in ("updater", "gateway", "query", "command"):
            with report.step(f"{name}: SIGTERM, clean exit") as detail:
                process = served.pop(name)
                code = process.stop(timeout=30)
                log = process.log_path.read_text(errors="replace")
                # uvicorn re-raises SIGTERM once it has shut down gracefully (since 0.29;
                # the e2e tests accept it too); buildah reports that death as exit 1.
                drained = (
                    name == "gateway"
                    and code == 1
                    and "subprocess exited on terminated" in log
                    and "Application shutdown complete." in log
                )
                if code != 0 and not drained:
                    raise CheckFailed(f"exit status {code}:\n{process.log_tail()}")
                detail.append(
                    "shut down gracefully, then ended by the re-raised SIGTERM"
                    if drained
                    else "exit 0"
                )


def smoke(ports: Ports, env: dict[str, str], tasks: str, secret: str) -> list[str]:
    # The processes get no WALLET_AUTH_ISSUER or _AUDIENCE: the defaults.
    fields = AuthSettings.model_fields
    token = mint_token(
        secret,
        wallets=[ALL_WALLETS],
        issuer=fields["auth_issuer"].default,
        audience=fields["auth_audience"].default,
        ttl=timedelta(minutes=10),
        subject="image-check",
    )
    status, body = http_get(ports.gateway, "/readyz")
    if status != 200:
        raise CheckFailed(f"GET /readyz {status}: {body[:500]!r}")
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    status, body = http_request(
        "POST",
        ports.gateway,
        f"/v1/wallets/{WALLET}/records",
        token=token,
        body={"datetime": occurred.isoformat(), "amount": "12.50"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    if status != 201:
        raise CheckFailed(f"POST records {status}: {body[:500]!r}")
    update = run(buildah_run(tasks, ["wallet", "update"], env), timeout=120)
    status, body = http_get(ports.gateway, f"/v1/wallets/{WALLET}/balance", token)
    if status != 200 or json.loads(body)["balance"] not in ("12.50", "12.5"):
        raise CheckFailed(f"GET balance {status}: {body[:500]!r}")
    start = (occurred - timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z")
    end = (occurred + timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z")
    status, body = http_get(
        ports.gateway, f"/v1/wallets/{WALLET}/history?start={start}&end={end}", token
    )
    if status != 200:
        raise CheckFailed(f"GET history {status}: {body[:500]!r}")
    balances = [point["balance"] for point in json.loads(body)["points"]]
    if not balances or balances[-1] not in ("12.50", "12.5"):
        raise CheckFailed(f"history balances {balances}")
    return [
        "GET /readyz 200",
        "POST record 201",
        f"`wallet update`: {update.stdout.strip().splitlines()[-1]}",
        f"balance {json.loads(body)['points'][-1]['balance']}, history {balances}",
    ]


# --- main -------------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--build-only", action="store_true", help="build and inspect the image, run nothing"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = Report()
    WORK.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        with report.step("tools: root, buildah, debootstrap"):
            require_tools()
        remove_containers()
        base, dockerfile = dockerfile_base(PROJECT_ROOT / "Dockerfile")
        with report.step(f"base: stand-in for {base}") as detail:
            ensure_base(qualified(base), detail)
        with report.step("buildah bud --isolation chroot (the Dockerfile)") as detail:
            run_logged(
                [
                    "buildah",
                    "bud",
                    "--isolation",
                    "chroot",
                    "--pull=never",
                    "--layers",
                    "--force-rm",
                    "--format",
                    "docker",
                    "-f",
                    str(dockerfile),
                    "-t",
                    IMAGE,
                    str(PROJECT_ROOT),
                ],
                LOGS / "build.log",
            )
            detail.append(IMAGE)
        with report.step("image: user, entry point, HEALTHCHECK") as detail:
            check_image_config(detail)
        if not args.build_only:
            check_processes(report)
    except Exception as error:  # reported: every failure ends in the summary
        if not report.results or report.results[-1][1]:
            report.add("(outside a step)", False, f"{type(error).__name__}: {error}")
    finally:
        remove_containers()
    print(report.summary())
    print(
        f"image-check: {'passed' if report.ok else 'FAILED'} in {time.monotonic() - started:.0f} s"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
