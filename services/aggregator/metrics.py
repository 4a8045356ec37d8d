"""The aggregator's own metrics: its upstream calls (the RED metrics of its routes are the kit's).

Labelled by upstream name ("work", "counter", "banner", "recommender"), never by page or user.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter(
    "aggregator_upstream_requests", "Upstream calls by outcome", ["upstream", "outcome"]
)
LATENCY = Histogram(
    "aggregator_upstream_request_duration_seconds",
    "Upstream call latency, whatever the outcome",
    ["upstream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 2, 5, 10),
)
CANCELLED = Counter(
    "aggregator_upstream_cancelled",
    "Upstream calls cancelled because the answer was decided without them",
    ["upstream"],
)
IN_FLIGHT = Gauge(
    "aggregator_upstream_in_flight",
    "Upstream calls in flight",
    ["upstream"],
    multiprocess_mode="livesum",
)
