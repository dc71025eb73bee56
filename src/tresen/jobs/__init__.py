"""Durable jobs: leases, retries with backoff, dead letters, workers, rate limits."""
