"""Code shared by the services: domain, settings, store adapters and gRPC plumbing."""
