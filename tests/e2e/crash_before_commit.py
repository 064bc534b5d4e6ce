"""`wallet` with a crash injected: run as `python -m tests.e2e.crash_before_commit update ...`,
the updater SIGKILLs itself inside the transaction of its first commit, after every row of
it is written and before COMMIT, as a crash or an OOM kill would stop it there. The
product has no such switch: the fault is put in from here, around the projection store's
commit step, and the rest is the `wallet` command unchanged."""

import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from services.updater.projection_store import ProjectionStore
from wallet_cli.main import main


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _killed_before_commit(apply: Callable[..., int]) -> Callable[..., int]:
    @wraps(apply)
    def applying(*args: Any, **kwargs: Any) -> int:
        return apply(*args, **{**kwargs, "before_commit": _kill_self})

    return applying


if __name__ == "__main__":
    ProjectionStore.apply = _killed_before_commit(ProjectionStore.apply)  # type: ignore[method-assign]
    sys.exit(main())
