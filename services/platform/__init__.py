"""What every process shares: settings, gRPC plumbing, tokens, metrics and trace ids."""
