"""The recommender's own metrics (the HTTP RED metrics come from the service kit)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LOOKUPS = Counter("recommender_cache_lookups", "Answers by where they came from", ["result"])
# Each labelled child is looked up once and kept: `labels()` hashes and locks on every call.
_LOOKUPS_BY_RESULT: dict[str, Counter] = {}


def lookups_of(result: str) -> Counter:
    """The lookups counter of one result (a cache.Source, or ERROR)."""
    child = _LOOKUPS_BY_RESULT.get(result)
    if child is None:
        child = _LOOKUPS_BY_RESULT[result] = LOOKUPS.labels(result)
    return child


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
