"""The recommender through the gateway and on each instance: scores, the two cache levels,
invalidation across replicas, single flight, batches, and MySQL going away and coming back."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import time
from functools import partial

import httpx
import pytest

from services.common.mysql import connect_blocking
from tests.support import refusals
from tests.support.cluster import RunningCluster
from tests.support.polling import wait_until

_ids = itertools.count(9_000_001)


def new_user() -> int:
    return next(_ids)


def add_events(cluster: RunningCluster, user_id: int, events: list[tuple[str, str, int]]) -> None:
    """(kind, category, age in days) rows, written straight into MySQL (no invalidation)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            for kind, category, days in events:
                at = now - dt.timedelta(days=days, hours=1)
                if kind == "search":
                    cur.execute(
                        "INSERT INTO searches (user_id, category, searched_at) VALUES (%s, %s, %s)",
                        (user_id, category, at),
                    )
                else:
                    cur.execute(
                        "INSERT INTO purchases (user_id, category, purchased_at)"
                        " VALUES (%s, %s, %s)",
                        (user_id, category, at),
                    )
        conn.commit()
    finally:
        conn.close()


def popularity_ranking(cluster: RunningCluster) -> list[str]:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT category, SUM(w) AS score FROM ("
                " SELECT category, 1 AS w FROM searches"
                " WHERE searched_at >= NOW() - INTERVAL 90 DAY"
                " UNION ALL SELECT category, 3 FROM purchases"
                " WHERE purchased_at >= NOW() - INTERVAL 90 DAY) AS e"
                " GROUP BY category ORDER BY score DESC, category"
            )
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def user_event_queries(cluster: RunningCluster) -> float:
    total = 0.0
    for name in ("recommender_1", "recommender_2"):
        metrics = httpx.get(f"{cluster.instance_url(name)}/metrics").text
        match = re.search(r'recommender_mysql_queries_total\{query="user_events"\} (\S+)', metrics)
        total += float(match[1]) if match else 0.0
    return total


async def test_scores_of_a_hand_made_user(cluster: RunningCluster) -> None:
    user = new_user()
    add_events(
        cluster,
        user,
        [
            ("search", "qa-books", 0),  # weight 1
            ("search", "qa-books", 14),  # 0.5
            ("search", "qa-music", 28),  # 0.25
            ("purchase", "qa-garden", 0),  # 3 x 1
            ("purchase", "qa-books", 120),  # outside the 90-day window
        ],
    )
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.get(f"/recommend/{user}")
    assert response.status_code == 200
    body = response.json()
    recs = body["recommendations"]
    assert recs["recommended_categories"] == ["qa-garden", "qa-books", "qa-music"]
    assert (recs["weightage"], recs["search_weight"], recs["purchase_weight"]) == (4.75, 1.75, 3.0)
    assert body["metadata"] == {"search_count": 3, "purchase_count": 1}
    assert recs["explore_categories"] == popularity_ranking(cluster)[:2]


async def test_cold_start_user_gets_explore_only(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        body = (await client.get(f"/recommend/{new_user()}")).json()
    assert body["recommendations"]["recommended_categories"] == []
    assert len(body["recommendations"]["explore_categories"]) == 2


async def test_miss_then_l1_then_l2_on_the_other_instance_and_invalidation_everywhere(
    cluster: RunningCluster,
) -> None:
    user = new_user()
    add_events(cluster, user, [("search", "qa-cameras", 1)])
    one = httpx.AsyncClient(base_url=cluster.instance_url("recommender_1"))
    two = httpx.AsyncClient(base_url=cluster.instance_url("recommender_2"))
    async with one, two:
        # One keep-alive connection = one worker process.
        first = await one.get(f"/recommend/{user}")
        second = await one.get(f"/recommend/{user}")
        other = await two.get(f"/recommend/{user}")
        assert [r.headers["x-cache"] for r in (first, second, other)] == [
            "MISS",
            "HIT-L1",
            "HIT-L2",
        ]

        # An event through instance 1 is seen by the next request on instance 2 ...
        event = await one.post(
            f"/users/{user}/events", json={"type": "purchase", "category": "qa-lenses"}
        )
        assert event.status_code == 202

        async def sees(client: httpx.AsyncClient, kind: str, count: int) -> bool:
            answer = (await client.get(f"/recommend/{user}")).json()
            return bool(answer["metadata"][kind] == count)

        # The invalidation reaches the other instance's L1 over pub/sub: soon, not at once.
        await wait_until(lambda: sees(two, "purchase_count", 1), 5, "instance 2 sees the event")
        # ... and instance 1's own L1 was dropped too.
        seen_by_one = await one.get(f"/recommend/{user}")
        assert seen_by_one.json()["metadata"]["purchase_count"] == 1

        # A change behind the cache's back stays invisible until an admin invalidates.
        add_events(cluster, user, [("search", "qa-tripods", 0)])
        assert (await two.get(f"/recommend/{user}")).json()["metadata"]["search_count"] == 1
        anonymous = await one.post(f"/invalidate-cache/{user}")
        assert anonymous.status_code == 401
        admin = {"Authorization": f"Bearer {cluster.admin_token}"}
        assert (await one.post(f"/invalidate-cache/{user}", headers=admin)).status_code == 200
        for client in (one, two):
            await wait_until(partial(sees, client, "search_count", 2), 5, "the invalidation")


async def test_a_stampede_for_a_cold_user_makes_one_query(cluster: RunningCluster) -> None:
    user = new_user()
    add_events(cluster, user, [("search", "qa-kites", 2)])
    before = user_event_queries(cluster)
    # 100 at once: under the gateway's bound of 64 in flight to each of the two instances (more
    # would be refused by the gateway, counted in tests/counter/test_gateway.py). One a worker's
    # admission control refused (a slow machine: it waited 100 ms) asks again after Retry-After.
    async with httpx.AsyncClient(
        base_url=cluster.internal, limits=httpx.Limits(max_connections=100)
    ) as c:
        responses = await asyncio.gather(
            *(refusals.httpx_get(c, f"/recommend/{user}") for _ in range(100))
        )
    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses}) == 1
    assert user_event_queries(cluster) - before == 1


async def test_batches(cluster: RunningCluster) -> None:
    known = new_user()
    add_events(cluster, known, [("purchase", "qa-boats", 3)])
    cold = [new_user() for _ in range(99)]
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        before = user_event_queries(cluster)
        full = await client.get(
            "/batch-recommend", params={"user_ids": ",".join(map(str, [known, *cold]))}
        )
        after = user_event_queries(cluster)
        folded = await client.get(
            "/batch-recommend", params={"user_ids": f"{known},{known},{cold[0]}"}
        )
        too_many = await client.get(
            "/batch-recommend", params={"user_ids": ",".join(str(u) for u in range(1, 102))}
        )
        garbage = await client.get("/batch-recommend", params={"user_ids": "1,two,3"})
        empty = await client.get("/batch-recommend", params={"user_ids": ""})
    assert full.status_code == 200
    body = full.json()
    assert (body["successful"], body["failed"]) == (100, 0)
    assert [r["user_id"] for r in body["results"]] == [known, *cold]
    assert body["results"][0]["recommendations"]["recommended_categories"] == ["qa-boats"]
    assert after - before == 1  # the misses of a batch are one query
    assert [r["user_id"] for r in folded.json()["results"]] == [known, cold[0]]
    assert too_many.status_code == 400
    assert garbage.status_code == 422
    assert empty.status_code == 422
    for response in (too_many, garbage, empty):
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/recommend/abc", None, 422),
        ("GET", "/recommend/0", None, 422),
        ("GET", "/recommend/-4", None, 422),
        ("POST", "/users/5/events", {"type": "click", "category": "x"}, 422),
        ("POST", "/users/5/events", {"type": "search", "category": "<script>"}, 422),
        ("POST", "/users/5/events", {"type": "purchase", "category": "x", "amount": -1}, 422),
        ("POST", "/users/5/events", None, 422),
        ("DELETE", "/recommend/5", None, 405),
    ],
)
async def test_bad_input_is_a_4xx(
    cluster: RunningCluster, method: str, path: str, body: object, status: int
) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["status"] == status


def _wait_ready(cluster: RunningCluster, timeout_s: float = 60) -> None:
    for name in ("recommender_1", "recommender_2"):
        cluster.wait_ready(name, timeout_s)


async def test_mysql_down_serves_cached_users_and_recovers(cluster: RunningCluster) -> None:
    warm, cold = new_user(), new_user()
    add_events(cluster, warm, [("search", "qa-maps", 1)])
    one = httpx.AsyncClient(base_url=cluster.instance_url("recommender_1"))
    two = httpx.AsyncClient(base_url=cluster.instance_url("recommender_2"))
    async with one, two:
        assert (await one.get(f"/recommend/{warm}")).headers["x-cache"] == "MISS"
        await asyncio.sleep(3.5)  # past the test cluster's L2 freshness (3 s)
        await asyncio.to_thread(cluster.ctl, "stop", "mariadb")
        try:
            still = await one.get(f"/recommend/{warm}")  # this worker's L1
            stale = await two.get(f"/recommend/{warm}")  # L2, past freshness
            missing = await two.get(f"/recommend/{cold}")
            batch = await two.get("/batch-recommend", params={"user_ids": f"{warm},{cold}"})
        finally:
            await asyncio.to_thread(cluster.ctl, "start", "mariadb")
        assert still.status_code == 200
        assert still.headers["x-cache"] == "HIT-L1"
        assert stale.status_code == 200
        assert stale.headers["x-cache"] == "STALE"
        assert stale.json()["metadata"]["search_count"] == 1
        assert missing.status_code == 503
        assert missing.headers["content-type"] == "application/problem+json"
        assert (batch.json()["successful"], batch.json()["failed"]) == (1, 1)

        # Back by itself once MySQL is: no restart of the service.
        deadline = time.monotonic() + 30
        recovered = await two.get(f"/recommend/{cold}")
        while recovered.status_code != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            recovered = await two.get(f"/recommend/{cold}")
        assert recovered.status_code == 200
        assert recovered.headers["x-cache"] == "MISS"
    await asyncio.to_thread(_wait_ready, cluster)
