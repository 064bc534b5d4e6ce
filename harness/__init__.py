"""Scratch databases and child processes, shared by the tests and the benchmarks."""
