"""The `wallet` command: it starts every process (the gateway too), the client commands
and the local stack, so it sits above the services and the gateway."""
