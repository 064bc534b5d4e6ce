"""`wallet dev`: the local stack on embedded defaults, as child processes of one command.

DynamoDB Local, PostgreSQL (embedded unless DATABASE_URL is set), the schema, the table, the
command and query services and the updater in --follow mode. Data lives in the dev folder
(.wallet-dev/) and survives restarts. Ctrl-C or SIGTERM stops every child.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack
from datetime import timedelta

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.ledger_table import ensure_table
from services.ledger.adapters.migrations import migrate
from services.ledger.adapters.write_store import dynamodb_client
from services.platform.auth.configured import dev_token, ensure_dev_secret
from services.platform.auth.tokens import ALL_WALLETS
from services.platform.settings import DevStackSettings, TokenSigningSettings
from wallet_cli.local.dynamodb_local import DynamoDBLocal
from wallet_cli.local.embedded_postgres import embedded_postgres

DYNAMODB_PORT_ENV = "WALLET_DYNAMODB_LOCAL_PORT"
DEV_DIR_ENV = "WALLET_DEV_DIR"  # read by DevStackSettings.dev_dir
_BANNER_TOKEN_TTL = timedelta(hours=12)


class PortBusy(RuntimeError):
    pass


def require_free_port(name: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise PortBusy(
                f"port {port} for {name} is busy: stop what uses it or set another port"
            ) from error


def _children_commands() -> list[list[str]]:
    wallet = [sys.executable, "-m", "wallet_cli"]
    return [
        [*wallet, "serve", "command"],
        [*wallet, "serve", "query"],
        [*wallet, "update", "--follow"],
        [*wallet, "serve", "gateway"],
    ]


def run_dev_stack() -> int:
    settings = DevStackSettings()
    dynamodb_port = int(os.environ.get(DYNAMODB_PORT_ENV, "8000"))
    require_free_port(f"DynamoDB Local (${DYNAMODB_PORT_ENV})", dynamodb_port)
    require_free_port("the command service ($WALLET_COMMAND_PORT)", settings.command_port)
    require_free_port("the query service ($WALLET_QUERY_PORT)", settings.query_port)
    require_free_port("the gateway ($WALLET_GATEWAY_PORT)", settings.gateway_port)
    for process, variable, port in _metrics_ports(settings):
        if port:
            require_free_port(f"the {process} metrics (${variable})", port)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    with ExitStack() as stack:
        dynamodb = DynamoDBLocal(port=dynamodb_port, data_dir=settings.dev_dir / "dynamodb")
        dynamodb.start()
        stack.callback(dynamodb.stop)
        os.environ.update(dynamodb.client_env())
        ensure_table(dynamodb_client(), settings.table_name)

        database_url = settings.database_url
        if database_url is None:
            postgres = embedded_postgres(settings.dev_dir / "postgres")
            stack.callback(postgres.cleanup)
            database_url = postgres.get_uri()
        engine = create_database_engine(database_url, pool_size=1)
        migrate(engine)
        engine.dispose()

        env = {
            **os.environ,
            **_auth_env(settings),
            "DATABASE_URL": database_url,
            "WALLET_COMMAND_ADDRESS": f"127.0.0.1:{settings.command_port}",
            "WALLET_QUERY_ADDRESS": f"127.0.0.1:{settings.query_port}",
        }
        children = [subprocess.Popen(command, env=env) for command in _children_commands()]
        stack.callback(_stop_all, children)
        gateway = f"http://127.0.0.1:{settings.gateway_port}"
        print(
            f"DynamoDB Local   {dynamodb.endpoint_url} (data in {settings.dev_dir})\n"
            f"PostgreSQL       {database_url}\n"
            f"WalletCommand    grpc://127.0.0.1:{settings.command_port}\n"
            f"WalletQuery      grpc://127.0.0.1:{settings.query_port}\n"
            "Updater          following the table's stream\n"
            f"Gateway          {gateway} (docs: {gateway}/docs)\n"
            f"Metrics          {_metrics_banner(settings, gateway)}\n"
            f"{_token_banner(settings)}\n"
            "Try:\n"
            f"  curl -s -X POST {gateway}/v1/wallets/alice/records \\\n"
            '    -H "Authorization: Bearer $TOKEN" \\\n'
            "    -H 'Content-Type: application/json' -H 'Idempotency-Key: try-0001' \\\n"
            '    -d \'{"datetime": "2019-10-05T14:48:01+01:00", "amount": "1.1"}\'\n'
            f'  curl -s -H "Authorization: Bearer $TOKEN" \\\n'
            f"    '{gateway}/v1/wallets/alice/history"
            "?start=2019-10-05T12:00:00Z&end=2019-10-05T14:00:00Z'\n\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stopping.wait(0.5):
            if any(child.poll() is not None for child in children):
                print("a service exited; stopping the stack", file=sys.stderr)
                return 1
    return 0


def _auth_env(settings: TokenSigningSettings) -> dict[str, str]:
    """The dev secret for every child, unless auth is off or keys are configured already."""
    if (
        settings.auth == "disabled"
        or settings.auth_jwks_url is not None
        or settings.auth_hs256_secret is not None
    ):
        return {}
    return {"WALLET_AUTH_HS256_SECRET": ensure_dev_secret(settings.dev_dir)}


def _token_banner(settings: TokenSigningSettings) -> str:
    if settings.auth == "disabled":
        return "Auth             DISABLED (WALLET_AUTH=disabled): any caller may use any wallet\n"
    token = dev_token(settings, [ALL_WALLETS], _BANNER_TOKEN_TTL, subject="wallet-dev-user")
    if token is None:
        return f"Auth             tokens from the issuer of {settings.auth_jwks_url}\n"
    hours = int(_BANNER_TOKEN_TTL.total_seconds() // 3600)
    return (
        f"Auth             a token for every wallet, valid {hours} h "
        "(`wallet token --wallet alice` mints narrower ones):\n"
        f"  export TOKEN={token}\n"
    )


def _metrics_ports(settings: DevStackSettings) -> list[tuple[str, str, int]]:
    """(process, variable, port) of the processes that serve metrics on a port of their own
    (a port of 0 serves none)."""
    return [
        ("command", "WALLET_COMMAND_METRICS_PORT", settings.command_metrics_port),
        ("query", "WALLET_QUERY_METRICS_PORT", settings.query_metrics_port),
        ("updater", "WALLET_UPDATER_METRICS_PORT", settings.updater_metrics_port),
    ]


def _metrics_banner(settings: DevStackSettings, gateway: str) -> str:
    served = [
        f"http://127.0.0.1:{port}/metrics ({process})"
        for process, _, port in _metrics_ports(settings)
        if port
    ]
    return "\n                 ".join([f"{gateway}/metrics (gateway)", *served])


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
