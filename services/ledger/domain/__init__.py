"""The ledger domain: pure rules, no I/O."""
