"""COUNTER_ACK=commit: a POST is answered only once Redis holds its increment, and concurrent
POSTs share batches (group commit)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.counter.conftest import PageOn, StartCounter
from tests.support.cluster import RunningCluster
from tests.support.load import hammer


@pytest.fixture
def commit_instance(cluster: RunningCluster, start_counter: StartCounter) -> str:
    """A private commit-mode instance on the cluster's shards and MySQL."""
    return start_counter(cluster.topo.redis_shards, COUNTER_ACK="commit").url


async def test_a_post_is_answered_after_redis_has_it(
    cluster: RunningCluster, page_on: PageOn, commit_instance: str
) -> None:
    shard = cluster.topo.shard_names[0]
    page = page_on(shard)
    owner = cluster.redis(shard)
    async with httpx.AsyncClient(base_url=commit_instance) as client:
        for expected in range(1, 6):
            assert (await client.post(f"/visits/{page}")).status_code == 200
            assert int(owner.get(f"visits:{page}") or 0) == expected


async def test_concurrent_posts_share_batches(
    cluster: RunningCluster, page_on: PageOn, commit_instance: str
) -> None:
    shard = cluster.topo.shard_names[1]
    page = page_on(shard)
    result = await hammer("POST", [f"{commit_instance}/visits/{page}"] * 2000, concurrency=200)
    assert result.ok == 2000
    assert int(cluster.redis(shard).get(f"visits:{page}") or 0) == 2000
    async with httpx.AsyncClient(base_url=commit_instance) as client:
        metrics = (await client.get("/metrics")).text
    match = re.search(
        rf'counter_flush_duration_seconds_count\{{target="{shard}"\}} (\d+(?:\.\d+)?)', metrics
    )
    assert match is not None
    batches = float(match[1])
    # Group commit: far fewer Redis round trips than requests.
    assert batches < 2000 / 4, batches
