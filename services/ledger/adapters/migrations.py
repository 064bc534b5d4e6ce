"""`wallet migrate`: applies the read model's Alembic migrations, then gives each process
that reads or writes the read model a database role of its own with only what it needs.

The roles are created here, not in a migration: roles belong to the whole server (every
database of it), an Alembic revision runs once per database, and the grants must follow
every table a later migration adds. So each run creates what is missing and grants again,
on the read model's tables (read_model.metadata, which a test holds equal to what the
migrations create), in the migrations' own transaction: a new table never exists without
its grants. ALTER DEFAULT PRIVILEGES would instead grant on anything the migrating user
ever creates, and only on what it creates after the statement ran.

The migrating user (on AWS the Aurora master user) owns the schema and its tables.
"""

from dataclasses import astuple, dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from services.ledger.adapters.read_model import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True)
class ProcessRoles:
    """Login roles, one per process, by name (terraform/ecs.tf and iam.tf use the same)."""

    # `wallet serve query`: reads the read model.
    query: str = "wallet_query"
    # `wallet update` (also --rebuild) and `wallet reconcile`: reads and writes it, in
    # temporary tables of its own and under advisory locks (which need no privilege).
    updater: str = "wallet_updater"


ROLES = ProcessRoles()

# A role is created when missing. Migrations of two databases of one server can race for
# it (the tests migrate many at once; an advisory lock would not help, its keys are per
# database): the loser waits for the winner's commit, gets unique_violation (or
# duplicate_object), and the role exists: done.
_CREATE_ROLE = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN
    CREATE ROLE {role} LOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END $$
"""

# Aurora lets a role sign in with an IAM token only as a member of rds_iam, a role that
# exists on RDS alone (nested IFs: pg_has_role fails on a role that does not exist).
_GRANT_RDS_IAM = """
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
    IF NOT pg_has_role({name}, 'rds_iam', 'MEMBER') THEN
      GRANT rds_iam TO {role};
    END IF;
  END IF;
END $$
"""


# The advisory lock of a migration; the updater's lock key is another.
MIGRATE_LOCK_KEY = 0x77616C6C65746D69  # "walletmi"


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest revision and the roles' grants up to date; safe to
    run again (already-applied steps are skipped, existing roles kept)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        # Two migrations of one database at once (a release and a hand-run migrate_command)
        # would otherwise race on alembic_version's creation and on the catalog's grant rows.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK_KEY})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        grant_roles(connection)


def grant_roles(connection: Connection, roles: ProcessRoles = ROLES) -> None:
    """Creates the roles when missing and grants them their privileges on this database
    (grants are per database; the roles are the server's)."""
    preparer = connection.dialect.identifier_preparer
    for name in astuple(roles):
        # The names are ProcessRoles' constants, quoted as identifier and as literal.
        role, literal = preparer.quote(name), "'" + name.replace("'", "''") + "'"
        connection.exec_driver_sql(_CREATE_ROLE.format(role=role, name=literal))
        connection.exec_driver_sql(_GRANT_RDS_IAM.format(role=role, name=literal))
    database, schema = connection.execute(text("SELECT current_database(), current_schema()")).one()
    query, updater = preparer.quote(roles.query), preparer.quote(roles.updater)
    tables = ", ".join(preparer.quote(table.name) for table in metadata.sorted_tables)
    # CONNECT and TEMPORARY are PUBLIC's by default; granted here too, so that a database
    # that revokes them from PUBLIC keeps working.
    # Privileges are set, not added to: whatever a role was granted by hand on this schema's
    # tables goes first, so each run leaves exactly the grants below.
    for statement in (
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {preparer.quote(schema)} FROM {query}, {updater}",
        f"GRANT CONNECT ON DATABASE {preparer.quote(database)} TO {query}, {updater}",
        f"GRANT TEMPORARY ON DATABASE {preparer.quote(database)} TO {updater}",
        f"GRANT USAGE ON SCHEMA {preparer.quote(schema)} TO {query}, {updater}",
        f"GRANT SELECT ON {tables} TO {query}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {updater}",
    ):
        connection.exec_driver_sql(statement)
