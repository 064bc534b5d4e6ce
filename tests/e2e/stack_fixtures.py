"""Fixtures for the gateway's end-to-end tests; test modules load them with
`pytest_plugins = ["tests.e2e.stack_fixtures"]`.

One `wallet dev` per session, on free ports, with its read model in a fresh database on the
test PostgreSQL server (dropped at the end). Its teardown checks that SIGTERM stopped every
process of the stack, and kills whatever did not stop, whether the tests passed or not.
"""

from collections.abc import Iterator

import httpx
import pytest

from harness.dev_stack import describe
from harness.scratch_database import new_database
from tests.auth_support import bearer_header
from tests.e2e.stack import HTTP_TIMEOUT, DevStack


@pytest.fixture(scope="session")
def dev_stack(
    postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevStack]:
    """`wallet dev` for the whole session, its read model in a fresh database. At teardown
    it must exit 0 on SIGTERM and leave nothing running."""
    root = tmp_path_factory.mktemp("gateway-stack")
    with new_database(postgres_admin_url, "wallet_e2e") as database_url:
        stack = DevStack.start(root / "dev", root / "logs", database_url)
        try:
            stack.wait_until_ready()
            yield stack
        finally:
            exit_code, survivors = stack.terminate()
        assert exit_code == 0, f"wallet dev exit code {exit_code} on SIGTERM:\n{stack.logs()}"
        assert not survivors, f"left running after wallet dev exited: {describe(survivors)}"


@pytest.fixture
def gateway(dev_stack: DevStack) -> Iterator[httpx.Client]:
    """An HTTP client on the session stack's gateway, sending a token for every wallet."""
    with httpx.Client(
        base_url=dev_stack.base_url, timeout=HTTP_TIMEOUT, headers=bearer_header()
    ) as client:
        yield client
