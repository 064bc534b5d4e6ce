"""The ledger: its domain (no I/O) and the adapters that store it."""
