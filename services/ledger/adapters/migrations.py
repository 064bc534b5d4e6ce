"""`wallet migrate`: applies the read model's Alembic migrations."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def migrate(engine: Engine, revision: str = "head") -> None:
    """Brings the schema to `revision`; safe to run again (already-applied steps are skipped)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
