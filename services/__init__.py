"""The wallet ledger services: command, query, updater, and the code they share."""
