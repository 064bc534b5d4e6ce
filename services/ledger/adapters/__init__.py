"""Adapters between the domain and the stores."""
