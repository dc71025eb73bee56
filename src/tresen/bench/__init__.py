"""Benchmarks: each is a command that prints one JSON line (see docs/performance.md)."""
