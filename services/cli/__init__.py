"""The `wallet` command: serving, client commands and the local stack."""
