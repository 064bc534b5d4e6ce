"""The local stack's PostgreSQL when DATABASE_URL is not set: an embedded server from the
pgserver package, with its data in the stack's data folder."""

import warnings
from pathlib import Path

from services.ledger.settings import Settings


def embedded_postgres_url(data_dir: Path) -> str:
    """Starts (or joins) the embedded server keeping its data in `data_dir` and returns its
    URL. The server stops when the last process that asked for it exits."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        import pgserver

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        url: str = pgserver.get_server(data_dir).get_uri()  # type: ignore[attr-defined]
    return url


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's URL."""
    return settings.database_url or embedded_postgres_url(settings.dev_dir / "postgres")
