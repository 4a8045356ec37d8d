"""The recommender's own metrics (the HTTP RED metrics come from the service kit)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LOOKUPS = Counter("recommender_cache_lookups", "Answers by where they came from", ["result"])
# The labelled children, made once: `labels()` hashes and locks on every call.
_LOOKUPS_BY_RESULT = {
    result: LOOKUPS.labels(result) for result in ("HIT-L1", "HIT-L2", "MISS", "STALE", "ERROR")
}


def lookups_of(result: str) -> Counter:
    """The lookups counter of one result (HIT-L1, HIT-L2, MISS, STALE, ERROR)."""
    return _LOOKUPS_BY_RESULT[result]


INVALIDATIONS = Counter("recommender_invalidations", "Invalidation messages applied")
L1_ENTRIES = Gauge(
    "recommender_l1_entries",
    "Answers held in the workers' L1 caches (each worker at most RECOMMENDER_L1_SIZE)",
    multiprocess_mode="livesum",
)
DEFERRED = Gauge(
    "recommender_invalidations_deferred",
    "Invalidations waiting for Redis to be delivered again",
    multiprocess_mode="livesum",
)
# Every query is counted, so tests and dashboards can see that a batch costs one query and a
# stampede of misses for one user costs one in the whole cluster.
QUERIES = Counter("recommender_mysql_queries", "Queries sent to MySQL", ["query"])
DELETED = Counter(
    "recommender_retention_deleted", "Rows deleted by the retention, by table", ["table"]
)
PASSES = Counter("recommender_retention_passes", "Retention passes, by outcome", ["outcome"])
