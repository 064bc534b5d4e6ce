"""The WalletCommand service: the only writer of the ledger."""
