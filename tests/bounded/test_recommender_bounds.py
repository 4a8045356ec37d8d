"""The recommender's state stays bounded under anonymous floods: unknown users cost no Redis key,
a miss reads at most RECOMMENDER_MAX_EVENTS events per kind (aggregated in SQL, scored exactly
like the events themselves), and each worker's L1 holds at most RECOMMENDER_L1_SIZE answers."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import httpx

from services.common.mysql import connect_blocking, create_pool
from services.recommender.recommending import Recommender
from services.recommender.scoring import Event, ScoringRules, recommend
from tests.bounded.conftest import Request, StartService, flood, get, keys_matching, metric
from tests.support.cluster import RunningCluster
from tests.support.polling import settled

RULES = ScoringRules(90, 14)
POPULAR = {f"cat-{i}": float(100 - i) for i in range(10)}
_ids = itertools.count(7_100_001)


def insert(cluster: RunningCluster, user_id: int, events: list[Event]) -> None:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            for kind, table, column in (
                ("search", "searches", "searched_at"),
                ("purchase", "purchases", "purchased_at"),
            ):
                rows = [
                    (user_id, e.category, e.at.replace(tzinfo=None))
                    for e in events
                    if e.kind == kind
                ]
                if rows:
                    cur.executemany(
                        f"INSERT INTO {table} (user_id, category, {column}) VALUES (%s, %s, %s)",
                        rows,
                    )
        conn.commit()
    finally:
        conn.close()


def random_events(rng: random.Random, now: dt.datetime, n: int) -> list[Event]:
    """Events across the window and beyond it, many right at whole-day boundaries of `now`."""
    events = []
    for _ in range(n):
        days = rng.randrange(0, 95)
        edge = rng.choice([0, 1, -1, rng.randrange(86_400_000_000)])
        at = now - dt.timedelta(days=days, microseconds=edge)
        kind = rng.choice(["search", "purchase"])
        category = rng.choice(["cat-1", "cat-2", "Cat-2", "cat-2 ", "cat-3", "zeta", "alpha"])
        events.append(Event(kind, category, at))  # type: ignore[arg-type]
    return events


async def test_sql_tallies_score_exactly_like_the_events_and_a_miss_reads_a_bounded_number(
    cluster: RunningCluster,
) -> None:
    rng = random.Random(14)
    now = dt.datetime.now(dt.UTC).replace(microsecond=123_456)
    pool = await create_pool(cluster.mysql_dsn, size=2)
    try:
        unbounded = Recommender(pool, RULES, max_events=100_000)
        unbounded.popularity = POPULAR
        for _ in range(8):
            user = next(_ids)
            events = random_events(rng, now, rng.randrange(1, 60))
            insert(cluster, user, events)
            got = (await unbounded.answers([user], now))[user]
            assert got == recommend(user, events, POPULAR, RULES, now)

        # A flooded user: 3,000 searches and 50 purchases. The miss reads the 1,000 most recent
        # searches (and every purchase); the answer is the one those events give.
        flooded = next(_ids)
        searches = [
            Event("search", f"cat-{i % 7}", now - dt.timedelta(minutes=40 * i)) for i in range(3000)
        ]
        purchases = [Event("purchase", "cat-9", now - dt.timedelta(days=i)) for i in range(50)]
        insert(cluster, flooded, searches + purchases)
        bounded = Recommender(pool, RULES, max_events=1000)
        bounded.popularity = POPULAR
        body = (await bounded.answers([flooded], now))[flooded]
        assert body["metadata"] == {"search_count": 1000, "purchase_count": 50}
        assert body == recommend(flooded, searches[:1000] + purchases, POPULAR, RULES, now)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_flood_of_unknown_users_creates_no_redis_key(cluster: RunningCluster) -> None:
    known = next(_ids)
    insert(cluster, known, [Event("search", "qa-bounded", dt.datetime.now(dt.UTC))])
    first = next(_ids)
    for _ in range(5_600):
        next(_ids)
    unknown = list(range(first, first + 4_950))  # 50 batches: the known user and 99 unknown
    singles = list(range(first + 4_950, first + 5_450))
    flooded = set(unknown) | set(singles)
    used_before = sum(
        int(cluster.redis(s).info("memory")["used_memory"]) for s in cluster.topo.shard_names
    )
    requests: list[Request] = [
        get("/batch-recommend", user_ids=",".join(map(str, [known, *unknown[i : i + 99]])))
        for i in range(0, len(unknown), 99)
    ]
    requests += [get(f"/recommend/{u}") for u in singles]
    statuses = await flood(requests, cluster.internal, concurrency=16, deadline_s=120)
    assert statuses.count(200) == len(requests)

    def flood_keys() -> list[str]:
        return [k for k, _ in keys_matching(cluster, "rec:*") if int(k.split(":")[-1]) in flooded]

    # Load locks (PX RECOMMENDER_LOAD_LOCK_S) are dropped by their loader at once.
    assert await settled(flood_keys, lambda keys: keys == [], timeout_s=5) == []
    everything = keys_matching(cluster, "rec:*")
    assert f"rec:{known}" in {k for k, _ in everything}  # users with history are cached
    # Every key of the cache has a TTL, so `volatile-lru` may evict any of them.
    assert [k for k, client in everything if client.ttl(k) < 0] == []
    used_after = sum(
        int(cluster.redis(s).info("memory")["used_memory"]) for s in cluster.topo.shard_names
    )
    print(f"5,450 unknown users: shards' used_memory {used_after - used_before:+,} bytes")


async def test_each_workers_l1_stays_within_its_size_under_a_flood(
    start_service: StartService,
) -> None:
    url = start_service("recommender", RECOMMENDER_L1_SIZE="200")
    first = next(_ids)
    for _ in range(2_000):
        next(_ids)
    requests: list[Request] = [
        get("/batch-recommend", user_ids=",".join(map(str, range(first + i, first + i + 100))))
        for i in range(0, 2_000, 100)
    ]
    statuses = await flood(requests, url, concurrency=4, deadline_s=60)
    assert statuses.count(200) == len(requests)
    held = metric(url, "recommender_l1_entries")
    assert 0 < held <= 200
    # The first ids were evicted (LRU): a miss again, answered like the first time.
    async with httpx.AsyncClient(base_url=url) as client:
        oldest = await client.get(f"/recommend/{first}")
    assert oldest.headers["x-cache"] == "MISS"
