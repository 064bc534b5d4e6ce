"""`wallet dev` on its embedded PostgreSQL (no DATABASE_URL): it serves the REST API end to
end, and SIGTERM leaves none of its processes running, grandchildren and the daemonised
PostgreSQL included. A busy gateway port is reported by name before anything starts.

(The session stack of the other gateway tests covers the DATABASE_URL variant: its
teardown asserts the same clean stop.)"""

from pathlib import Path

import httpx
import psutil

from harness.dev_stack import DevPorts, describe
from tests.auth_support import bearer_header
from tests.e2e.processes import occupied_port, run_refused_dev
from tests.e2e.stack import (
    HTTP_TIMEOUT,
    DevStack,
    new_key,
    new_wallet,
    now,
    post_json,
    record_json,
    wait_for_projection,
)

CHILD_COMMANDS = ("serve command", "serve query", "update --follow", "serve gateway")


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_embedded_postgres_stack_serves_and_stops_every_process(tmp_path: Path) -> None:
    dev_dir = tmp_path / "dev"
    stack = DevStack.start(dev_dir, tmp_path / "logs", database_url=None)
    stopped = False
    try:
        stack.wait_until_ready()
        wallet = new_wallet("embedded")
        with httpx.Client(
            base_url=stack.base_url, timeout=HTTP_TIMEOUT, headers=bearer_header()
        ) as client:
            created = post_json(
                client,
                f"/v1/wallets/{wallet}/records",
                record_json("2019-10-05T14:48:01+01:00", "1.1"),
                {"Idempotency-Key": new_key()},
            )
            assert created.status_code == 201, created.text
            wait_for_projection(client, now())
            history = client.get(
                f"/v1/wallets/{wallet}/history",
                params={"start": "2019-10-05T12:00:00Z", "end": "2019-10-05T14:00:00Z"},
            )
            assert history.status_code == 200, history.text
            assert [p["balance"] for p in history.json()["points"]] == ["0", "0", "1.1"]

        processes = stack.remember_processes()
        lines = [command_line(p) for p in processes]
        # Not vacuous: what should be stopped is there to begin with.
        for child in CHILD_COMMANDS:
            assert any(child in line for line in lines), (child, describe(processes))
        assert any(p.name() == "java" for p in processes), describe(processes)
        postgres = [
            p
            for p in processes
            if p.name().startswith("postgres") and str(dev_dir) in command_line(p)
        ]
        assert postgres, f"no embedded PostgreSQL on {dev_dir}: {describe(processes)}"

        exit_code, survivors = stack.terminate()
        stopped = True
        assert exit_code == 0, f"exit code {exit_code} on SIGTERM:\n{stack.logs()}"
        assert not survivors, f"left running after wallet dev exited: {describe(survivors)}"
    finally:
        if not stopped:
            stack.terminate()


def test_busy_gateway_port_is_reported_by_name(tmp_path: Path) -> None:
    dev_dir = tmp_path / "dev"
    with occupied_port() as taken:
        result, leftovers = run_refused_dev(dev_dir, DevPorts(gateway=taken))

    assert result.returncode != 0, result.stdout
    assert "gateway" in result.stderr, result.stderr
    assert str(taken) in result.stderr, result.stderr
    assert "WALLET_GATEWAY_PORT" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not leftovers, f"left running: {describe(leftovers)}"
