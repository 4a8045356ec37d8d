"""The counter as a user reaches it: HTTP through the nginx gateway, both instances behind it."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.counter.conftest import PageOn, ledger_total
from tests.support.cluster import RunningCluster
from tests.support.load import hammer
from tests.support.polling import wait_until


async def _wait_for(predicate_value: object, probe: object, timeout_s: float = 10) -> object:
    assert callable(probe)
    deadline = time.monotonic() + timeout_s
    value = probe()
    while value != predicate_value and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        value = probe()
    return value


async def test_post_contract_and_alias(cluster: RunningCluster, page_on: PageOn) -> None:
    page = page_on(cluster.topo.shard_names[0])
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        plural = await client.post(f"/visits/{page}")
        singular = await client.post(f"/visit/{page}")
    for response in (plural, singular):
        assert response.status_code == 200
        assert response.json() == {
            "status": "success",
            "message": f"Visit recorded for page {page}",
        }
        assert len(response.headers["x-request-id"]) == 32


async def test_20000_concurrent_posts_are_counted_exactly(
    cluster: RunningCluster, page_on: PageOn
) -> None:
    """200 at once, more than the gateway holds in flight to the counter's two instances (64
    each): the rest are refused with 503 (admission control), and every POST answered 200 is
    counted, exactly once, and no refused one is."""
    page = page_on(cluster.topo.shard_names[1])
    result = await hammer("POST", [f"{cluster.internal}/visits/{page}"] * 20_000, concurrency=200)
    assert set(result.statuses) <= {200, 503}, (result.statuses, result.errors)
    assert not result.errors, result.errors
    counted = result.ok
    assert counted >= 1_000, result.statuses  # refusals are fast: a closed loop meets many
    # Flushed by both instances (before any GET, so no answer is cached from before the flush).
    owner = cluster.redis(cluster.topo.shard_names[1])
    in_redis = await _wait_for(counted, lambda: int(owner.get(f"visits:{page}") or 0))
    assert in_redis == counted
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        answers = [(await client.get(f"/visits/{page}")).json() for _ in range(4)]
    assert {a["visits"] for a in answers} == {counted}
    assert await _wait_for(counted, lambda: ledger_total(cluster, page)) == counted


async def test_daily_ledger_endpoint(cluster: RunningCluster, page_on: PageOn) -> None:
    page = page_on(cluster.topo.shard_names[0])
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        for _ in range(3):
            assert (await client.post(f"/visits/{page}")).status_code == 200
        assert await _wait_for(3, lambda: ledger_total(cluster, page)) == 3
        body = (await client.get(f"/visits/{page}/daily", params={"days": 3})).json()
        default = (await client.get(f"/visits/{page}/daily")).json()
    assert body["page_id"] == page
    assert [d["visits"] for d in body["days"]][-1] == 3
    assert body["total"] == 3
    assert len(body["days"]) == 3
    assert len(default["days"]) == 7
    assert body["days"] == sorted(body["days"], key=lambda d: d["day"])


async def test_read_cache_then_shard_and_both_shards_used(
    cluster: RunningCluster, page_on: PageOn
) -> None:
    shard_a, shard_b = cluster.topo.shard_names
    pages = {shard_a: page_on(shard_a), shard_b: page_on(shard_b)}
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        for page in pages.values():
            await client.post(f"/visits/{page}")
        for shard, page in pages.items():
            redis, key = cluster.redis(shard), f"visits:{page}"
            assert await _wait_for(1, lambda r=redis, k=key: int(r.get(k) or 0)) == 1, shard
        for shard, page in pages.items():
            first = [(await client.get(f"/visits/{page}")).json() for _ in range(12)]
            assert {a["visits"] for a in first} == {1}
            sources = [a["served_via"] for a in first]
            # One shard read per instance at most; everything else from memory within the TTL.
            assert set(sources) <= {shard, "in_memory"}
            assert 1 <= sources.count(shard) <= 2
            assert sources.count("in_memory") >= 10
        # Once COUNTER_CACHE_TTL_S (5 s in the test cluster) has passed, reads reach the shard.
        for shard, page in pages.items():

            async def from_the_shard(shard: str = shard, page: str = page) -> bool:
                answer = (await client.get(f"/visits/{page}")).json()
                return bool(answer["served_via"] == shard)

            await wait_until(from_the_shard, timeout_s=8, what=f"{page} read from {shard}")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/visits/" + "a" * 129, 422),
        ("POST", "/visits/" + "a" * 129, 422),
        ("GET", "/visits/bad%20id", 422),
        ("POST", "/visits/%C3%A9t%C3%A9", 422),
        ("POST", "/visits/semi;colon", 422),
        ("GET", "/visits/a/b", 404),
        # nginx refuses a path that climbs above the root before any service sees it
        ("GET", "/visits/..%2F..%2Fetc%2Fpasswd", 400),
        ("GET", "/visits/" + "x" * 20_000, 414),
        ("PUT", "/visits/home", 405),
        ("DELETE", "/visits/home", 405),
        ("POST", "/visits/home/daily", 405),
        ("GET", "/visits/home/daily?days=0", 422),
        ("GET", "/visits/home/daily?days=367", 422),
        ("GET", "/visits/home/daily?days=seven", 422),
        ("GET", "/metrics", 404),
        ("GET", "/healthz", 404),
        ("GET", "/readyz", 404),
        ("GET", "/nothing/here", 404),
    ],
)
async def test_bad_input_gets_a_json_4xx(
    cluster: RunningCluster, method: str, path: str, status: int
) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] in {"application/problem+json", "application/json"}
    assert response.json()["status"] == status
