"""The REST gateway: HTTP/JSON in front of the two gRPC services; it stores nothing."""
