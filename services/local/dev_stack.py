"""`wallet dev`: the local stack on embedded defaults, as child processes of one command.

Data lives in .wallet-dev/ and survives restarts. Ctrl-C or SIGTERM stops every child.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from services.ledger.adapters.ledger_table import ensure_table
from services.ledger.adapters.write_store import dynamodb_client
from services.ledger.settings import Settings
from services.local.dynamodb_local import PROJECT_ROOT, DynamoDBLocal

DEV_DIR_ENV = "WALLET_DEV_DIR"
DYNAMODB_PORT_ENV = "WALLET_DYNAMODB_LOCAL_PORT"


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


def run_dev_stack() -> int:
    settings = Settings()
    data_dir = Path(os.environ.get(DEV_DIR_ENV, PROJECT_ROOT / ".wallet-dev"))
    dynamodb_port = int(os.environ.get(DYNAMODB_PORT_ENV, "8000"))
    require_free_port(f"DynamoDB Local (${DYNAMODB_PORT_ENV})", dynamodb_port)
    require_free_port("the command service ($WALLET_COMMAND_PORT)", settings.command_port)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    dynamodb = DynamoDBLocal(port=dynamodb_port, data_dir=data_dir / "dynamodb")
    dynamodb.start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        env = {**os.environ, **dynamodb.client_env()}
        os.environ.update(dynamodb.client_env())
        ensure_table(dynamodb_client(), settings.table_name)
        children.append(
            subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "command"], env=env)
        )
        print(
            f"DynamoDB Local   {dynamodb.endpoint_url} (data in {data_dir})\n"
            f"WalletCommand    grpc://127.0.0.1:{settings.command_port}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stopping.wait(0.5):
            if any(child.poll() is not None for child in children):
                print("a service exited; stopping the stack", file=sys.stderr)
                return 1
        return 0
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        dynamodb.stop()
