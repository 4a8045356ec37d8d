"""What a flood of unique page ids costs the counter: one permanent Redis key per page (no TTL:
counts are exact and never evicted) of a measured size, one ledger row per (page, day) in MySQL,
and nothing unbounded in a process (the read cache holds at most COUNTER_CACHE_SIZE pages, the
buffers drain)."""

from __future__ import annotations

import uuid
from functools import partial

import redis

from services.common.mysql import connect_blocking
from tests.bounded.conftest import StartService, flood, get, keys_matching, metric, post
from tests.support.cluster import RunningCluster
from tests.support.polling import settled


def ledger_rows(cluster: RunningCluster, prefix: str) -> int:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM page_visits_daily WHERE page_id LIKE %s", (prefix + "%",)
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


async def test_a_flood_of_unique_pages_costs_one_key_and_one_ledger_row_each(
    cluster: RunningCluster,
) -> None:
    prefix = f"fl{uuid.uuid4().hex[:6]}-"  # 9 characters, then a 15-digit number: 24 in all
    typical = [f"{prefix}{i:015d}" for i in range(9_900)]
    maximal = [f"{prefix}{i:0119d}" for i in range(100)]  # 128 characters
    pages = typical + maximal
    statuses = await flood(
        [post(f"/visits/{p}") for p in pages], cluster.internal, concurrency=32, deadline_s=180
    )
    assert statuses.count(200) == len(pages)

    def flooded() -> list[tuple[str, redis.Redis]]:
        return keys_matching(cluster, f"visits:{prefix}*")

    keys = await settled(flooded, lambda found: len(found) == len(pages), timeout_s=30)
    assert len(keys) == len(pages)
    by_name = dict(keys)
    # Counts never expire: no TTL, so `volatile-lru` never evicts them.
    assert all(c.ttl(k) == -1 for k, c in keys[:500])
    sizes = {
        length: [
            by_name[f"visits:{p}"].memory_usage(f"visits:{p}", samples=0) or 0 for p in group[:50]
        ]
        for length, group in ((24, typical), (128, maximal))
    }
    print(f"MEMORY USAGE of visits:<id>: { ({n: max(v) for n, v in sizes.items()}) } bytes")
    assert max(sizes[24]) <= 100
    assert max(sizes[128]) <= 210

    rows = await settled(partial(ledger_rows, cluster, prefix), lambda n: n == len(pages), 30)
    assert rows == len(pages)
    # The buffers drained: nothing left waiting in any process.
    for name in ("counter_1", "counter_2"):
        url = cluster.instance_url(name)
        rows_left = partial(metric, url, "counter_buffered_rows")
        assert await settled(rows_left, lambda n: n == 0, 10) == 0


async def test_the_read_cache_holds_at_most_its_size_under_a_flood(
    start_service: StartService,
) -> None:
    url = start_service("counter", COUNTER_CACHE_SIZE="300")
    prefix = f"rc{uuid.uuid4().hex[:6]}-"
    statuses = await flood(
        [get(f"/visits/{prefix}{i}") for i in range(2_000)], url, concurrency=8, deadline_s=60
    )
    assert statuses.count(200) == 2_000
    held = metric(url, "counter_read_cache_entries")
    assert 0 < held <= 300
