"""The counter's own metrics (the HTTP RED metrics come from the service kit)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PENDING = Gauge(
    "counter_pending_visits",
    "Visits accepted by this process and not yet confirmed by Redis",
    multiprocess_mode="livesum",
)
READ_CACHE_ENTRIES = Gauge(
    "counter_read_cache_entries",
    "Pages in the processes' read caches (each process at most COUNTER_CACHE_SIZE)",
    multiprocess_mode="livesum",
)
BUFFERED_ROWS = Gauge(
    "counter_buffered_rows",
    "(page, day) rows this process buffers, not yet sent to Redis (each shard at most"
    " COUNTER_MAX_PENDING)",
    multiprocess_mode="livesum",
)
# Every process sees the same stream, so the processes' values agree: max, not sum.
LEDGER_BACKLOG_ENTRIES = Gauge(
    "counter_ledger_backlog_entries",
    "Batches in a shard's ledger stream not yet in the MySQL daily ledger",
    ["shard"],
    multiprocess_mode="livemax",
)
LEDGER_BACKLOG_BYTES = Gauge(
    "counter_ledger_backlog_bytes",
    "Payload bytes in a shard's ledger stream (bounded by COUNTER_LEDGER_MAX_BACKLOG_BYTES)",
    ["shard"],
    multiprocess_mode="livemax",
)
# The bound itself, so an alert compares with what the instances run with, not a copy of the
# default.
LEDGER_BACKLOG_LIMIT_BYTES = Gauge(
    "counter_ledger_backlog_limit_bytes",
    "COUNTER_LEDGER_MAX_BACKLOG_BYTES: at this backlog a shard refuses new batches",
    multiprocess_mode="livemin",
)
FLUSH_LAG = Gauge(
    "counter_flush_lag_seconds",
    "How long a buffer has held visits without a successful flush (0 when empty)",
    ["target"],
    multiprocess_mode="livemax",
)
FLUSH_DURATION = Histogram(
    "counter_flush_duration_seconds",
    "Time to apply one batch",
    ["target"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
FLUSH_FAILURES = Counter(
    "counter_flush_failures", "Batches that could not be applied (retried later)", ["target"]
)
FLUSHED = Counter("counter_flushed_visits", "Visits applied by flushes", ["target"])
READS = Counter("counter_reads", "Count reads by where the answer came from", ["source"])
REJECTED = Counter(
    "counter_rejected_visits", "Visits refused because their shard's buffer was full"
)
LOST_AT_SHUTDOWN = Counter(
    "counter_lost_visits", "Visits still unflushed when the shutdown deadline passed", ["target"]
)
