"""The updater: projects DynamoDB aggregate items into the PostgreSQL read model."""
