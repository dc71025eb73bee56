"""Prometheus metrics of every process (web and worker); multiprocess-safe under `serve --workers`.

With PROMETHEUS_MULTIPROC_DIR set before this module is first imported (`tresen serve --workers N`
does it), every process writes its values there and any of them reports the sum. Labels carry
kinds, channel kinds, outcomes and provider error codes, never ids or personal data.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "tresen_webhooks_total", "Webhook calls by channel kind and outcome", ["kind", "outcome"]
)
INBOUND_MESSAGES = Counter("tresen_inbound_messages_total", "New inbound messages stored", ["kind"])
INGEST_SECONDS = Histogram(
    "tresen_ingest_seconds",
    "Time from a webhook's arrival to its committed transaction, by channel kind",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
JOB_RUN_SECONDS = Histogram(
    "tresen_job_run_seconds",
    "Run time of jobs by kind",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
JOB_FAILURES = Counter("tresen_job_failures_total", "Jobs that raised, by kind", ["kind"])
DEAD_LETTERS = Counter(
    "tresen_dead_letters_total", "Jobs given up on (dead letters), by kind", ["kind"]
)
SENDS = Counter(
    "tresen_sends_total",
    "Sends to providers by channel kind, outcome and provider error code",
    ["channel", "outcome", "code"],
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "tresen_rate_limit_wait_seconds",
    "Time a send waited for its channel account's rate limit",
    ["channel"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PROVIDER_FAILURE_STREAK = Gauge(
    "tresen_provider_failure_streak",
    "Failed sends in a row per channel kind in this process (0 after a success)",
    ["channel"],
    multiprocess_mode="max",
)
SSE_CONNECTIONS = Gauge(
    "tresen_sse_connections", "Open live-update streams (inbox pages)", multiprocess_mode="livesum"
)
EVENT_CONSUMER_FAILURES = Counter(
    "tresen_event_consumer_failures_total",
    "Deliveries of domain events whose consumer raised, by consumer (retried from its cursor)",
    ["consumer"],
)
BOT_OUTCOMES = Counter("tresen_bot_outcomes_total", "Bot turns by outcome", ["outcome"])
