"""The WalletQuery service: balances and hourly history from the PostgreSQL read model."""
