"""Verifying bearer tokens, and the verifier a process runs with."""
