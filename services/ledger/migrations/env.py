"""Alembic environment: runs the read model's migrations on the connection it is given."""

from alembic import context

from services.ledger.adapters.read_model import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
