"""The local stack's PostgreSQL when DATABASE_URL is not set: an embedded server from the
pgserver package, with its data in the stack's data folder."""

import warnings
from pathlib import Path
from typing import Any


def embedded_postgres(data_dir: Path) -> Any:
    """Starts (or joins) the embedded server keeping its data in `data_dir`. It stops when
    the last process holding it exits, or on the handle's cleanup()."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        import pgserver

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        return pgserver.get_server(data_dir)  # type: ignore[attr-defined]


def embedded_postgres_url(data_dir: Path) -> str:
    url: str = embedded_postgres(data_dir).get_uri()
    return url
