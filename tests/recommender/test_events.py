"""Recording events: a recorded event is acknowledged even when its cache invalidation cannot
reach Redis (the invalidation is delivered later), and a retry with the same Idempotency-Key is
recorded once."""

from __future__ import annotations

import uuid

import httpx

from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from tests.recommender.faults import refused, stalled, timed, wait_until
from tests.recommender.test_api import new_user
from tests.support.cluster import RunningCluster

# A Redis step waits REDIS_TIMEOUT_S (0.5 s); what a shared, noisy machine may add to it.
MARGIN_S = 0.5


def stored_events(cluster: RunningCluster, user_id: int) -> int:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT (SELECT COUNT(*) FROM searches WHERE user_id = %s)"
                " + (SELECT COUNT(*) FROM purchases WHERE user_id = %s)",
                (user_id, user_id),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def user_on(cluster: RunningCluster, shard: str) -> int:
    ring = ShardRing(cluster.topo.shard_names)
    return next(u for u in iter(new_user, None) if ring.shard_for(str(u)) == shard)


def the_other_shard(cluster: RunningCluster, shard: str) -> str:
    return next(s for s in cluster.topo.shard_names if s != shard)


def channel_shard(cluster: RunningCluster) -> str:
    return ShardRing(cluster.topo.shard_names).shard_for("recommender:invalidate")


def version(cluster: RunningCluster, shard: str, user_id: int) -> int:
    return int(cluster.redis(shard).get(f"rec:ver:{user_id}") or 0)


PURCHASE = {"type": "purchase", "category": "qa-kayaks", "amount": "19.90"}


async def test_an_event_is_acknowledged_when_its_invalidation_fails(
    cluster: RunningCluster,
) -> None:
    # The user's shard is not the channel's, so the other workers' L1s are dropped at once and
    # only the L2 step waits for the shard to come back.
    shard = the_other_shard(cluster, channel_shard(cluster))
    user = user_on(cluster, shard)
    async with httpx.AsyncClient(base_url=cluster.gateway, timeout=10) as client:
        assert (await client.get(f"/recommend/{user}")).status_code == 200  # cached in L2
        async with refused(cluster, shard, kill=True):
            during = await client.post(f"/users/{user}/events", json=PURCHASE)
        # Once the shard is back (its AOF kept the old entry), the deferred invalidation lands.
        await wait_until(
            lambda: version(cluster, shard, user) >= 1, 10, "the deferred invalidation landed"
        )
        after = await client.get(f"/recommend/{user}")
    assert during.status_code == 202, during.text
    assert stored_events(cluster, user) == 1
    assert after.json()["metadata"]["purchase_count"] == 1


async def test_a_stalled_shard_delays_an_event_by_one_redis_timeout(
    cluster: RunningCluster,
) -> None:
    shard = the_other_shard(cluster, channel_shard(cluster))
    user = user_on(cluster, shard)
    async with httpx.AsyncClient(base_url=cluster.gateway, timeout=10) as client:
        async with stalled(cluster, shard):
            during = await timed(client.post(f"/users/{user}/events", json=PURCHASE))
        await wait_until(
            lambda: version(cluster, shard, user) >= 1, 10, "the deferred invalidation landed"
        )
    assert during.status == 202
    assert during.took_s < 0.5 + MARGIN_S
    assert stored_events(cluster, user) == 1


async def test_a_retry_with_the_same_idempotency_key_counts_once(cluster: RunningCluster) -> None:
    user, other_user = new_user(), new_user()
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        first = await client.post(f"/users/{user}/events", json=PURCHASE, headers=key)
        # The same event, spelled differently (the amount's trailing zero, an unused field).
        retry = await client.post(
            f"/users/{user}/events",
            json={**PURCHASE, "amount": "19.9", "query": "ignored for a purchase"},
            headers=key,
        )
        reused = await client.post(
            f"/users/{user}/events", json={**PURCHASE, "category": "qa-canoes"}, headers=key
        )
        # Keys are the user's own: another user's event under the same key is its own event.
        elsewhere = await client.post(f"/users/{other_user}/events", json=PURCHASE, headers=key)
        case = {"Idempotency-Key": key["Idempotency-Key"].upper()}
        other_case = await client.post(f"/users/{user}/events", json=PURCHASE, headers=case)
        seen = (await client.get(f"/recommend/{user}")).json()
        too_long = await client.post(
            f"/users/{user}/events", json=PURCHASE, headers={"Idempotency-Key": "k" * 256}
        )
        spaced = await client.post(
            f"/users/{user}/events", json=PURCHASE, headers={"Idempotency-Key": "a b"}
        )
    assert (first.status_code, retry.status_code) == (202, 202)
    assert first.json() == retry.json() == {"status": "accepted", "user_id": user}
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["idempotent-replayed"] == "true"
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert elsewhere.status_code == 202
    assert "idempotent-replayed" not in elsewhere.headers
    assert other_case.status_code == 202  # keys compare exactly
    assert "idempotent-replayed" not in other_case.headers
    assert stored_events(cluster, user) == 2
    assert stored_events(cluster, other_user) == 1
    assert seen["metadata"]["purchase_count"] == 2
    for bad in (too_long, spaced):
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"


async def test_a_retry_after_mysql_stalled_counts_once(cluster: RunningCluster) -> None:
    """The reply that was lost may be the commit's: the client cannot know, the key can."""
    user = new_user()
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    async with httpx.AsyncClient(base_url=cluster.gateway, timeout=10) as client:
        async with stalled(cluster, "mariadb"):
            during = await timed(client.post(f"/users/{user}/events", json=PURCHASE, headers=key))
        retries = [
            await client.post(f"/users/{user}/events", json=PURCHASE, headers=key) for _ in range(3)
        ]
    assert during.status == 503
    assert during.response.headers["content-type"] == "application/problem+json"
    assert during.took_s < 2.0 + MARGIN_S
    assert {r.status_code for r in retries} == {202}
    assert stored_events(cluster, user) == 1
