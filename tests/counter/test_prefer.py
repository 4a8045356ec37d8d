"""POST /visits/{id} with RFC 7240 `Prefer: return=representation`: the answer is the page's count
as GET gives it, this visit included; without the preference the POST answers as it always did."""

from __future__ import annotations

import httpx
import pytest

from tests.counter.conftest import PageOn, ScratchShards, StartCounter
from tests.support.cluster import RunningCluster

PREFER = {"Prefer": "return=representation"}


def _applied(response: httpx.Response) -> bool:
    return bool(response.headers.get("preference-applied") == "return=representation")


async def test_the_representation_counts_this_visit_and_earlier_ones(
    cluster: RunningCluster, page_on: PageOn
) -> None:
    shard = cluster.topo.shard_names[0]
    page = page_on(shard)
    # Visits flushed earlier (by any instance) are in the shard; this instance must add its own.
    earlier = 40
    cluster.redis(shard).set(f"visits:{page}", earlier)
    # One connection to one instance: one worker, whose buffer holds every visit it was sent.
    async with httpx.AsyncClient(base_url=cluster.instance_url("counter_1")) as client:
        answers = [await client.post(f"/visits/{page}", headers=PREFER) for _ in range(5)]
        read = await client.get(f"/visits/{page}")
    assert [a.status_code for a in answers] == [200] * 5
    assert all(_applied(a) for a in answers)
    assert all(a.headers["content-location"] == f"/visits/{page}" for a in answers)
    assert [a.json()["visits"] for a in answers] == [earlier + k for k in range(1, 6)]
    # The same read as GET's, read cache included: the first went to the shard, the rest were
    # answered from memory within COUNTER_CACHE_TTL_S, and a GET right after agrees.
    assert [a.json()["served_via"] for a in answers] == [shard] + ["in_memory"] * 4
    assert set(answers[0].json()) == {"visits", "served_via"}
    assert read.json() == {"visits": earlier + 5, "served_via": "in_memory"}


async def test_through_the_gateway_and_without_the_preference(
    cluster: RunningCluster, page_on: PageOn
) -> None:
    page = page_on(cluster.topo.shard_names[1])
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        represented = await client.post(f"/visits/{page}", headers=PREFER)
        plain = await client.post(f"/visits/{page}")
        minimal = await client.post(f"/visits/{page}", headers={"Prefer": "return=minimal"})
        combined = await client.post(
            f"/visit/{page}", headers={"Prefer": "respond-async, RETURN=representation"}
        )
    # nginx passes the request header in and the answer's header out.
    assert represented.status_code == 200
    assert _applied(represented)
    # A fresh page: nothing but this visit exists yet.
    assert represented.json()["visits"] == 1
    for unchanged in (plain, minimal):
        assert unchanged.status_code == 200
        assert unchanged.json() == {
            "status": "success",
            "message": f"Visit recorded for page {page}",
        }
        assert "preference-applied" not in unchanged.headers
        assert "content-location" not in unchanged.headers
    # Several preferences in one field, the alias path: still applied, and every visit counted
    # by whichever instance answers is at least this one.
    assert _applied(combined)
    assert combined.json()["visits"] >= 1


async def test_commit_mode_representation_is_what_redis_holds(
    cluster: RunningCluster, page_on: PageOn, start_counter: StartCounter
) -> None:
    shard = cluster.topo.shard_names[1]
    page = page_on(shard)
    instance = start_counter(cluster.topo.redis_shards, COUNTER_ACK="commit")
    async with httpx.AsyncClient(base_url=instance.url) as client:
        for expected in range(1, 4):
            answer = await client.post(f"/visits/{page}", headers=PREFER)
            assert answer.status_code == 200
            assert _applied(answer)
            assert answer.json()["visits"] == expected
            assert int(cluster.redis(shard).get(f"visits:{page}") or 0) == expected


@pytest.mark.parametrize("mode", ["batch", "commit"])
async def test_a_dead_shard_still_answers_with_the_count_degraded(
    cluster: RunningCluster, scratch_shards: ScratchShards, start_counter: StartCounter, mode: str
) -> None:
    # The read cache off, so that every answer has to meet the shard.
    off = {"COUNTER_CACHE_TTL_S": "0", "COUNTER_COMMIT_TIMEOUT_S": "0.5"}
    instance = start_counter(scratch_shards.spec, COUNTER_ACK=mode, **off)
    page = scratch_shards.page_on("a")
    async with httpx.AsyncClient(base_url=instance.url, timeout=10) as client:
        before = await client.post(f"/visits/{page}", headers=PREFER)
        assert before.json() == {"visits": 1, "served_via": "a"}
        scratch_shards.kill("a")
        try:
            answer = await client.post(f"/visits/{page}", headers=PREFER)
        finally:
            scratch_shards.start("a")
    # Batch mode acknowledges the buffered visit; commit mode's wait runs out (202: queued).
    assert answer.status_code == (200 if mode == "batch" else 202)
    assert _applied(answer)
    # From memory, flagged: the shard did not answer, this process's own visits are counted.
    assert answer.json() == {"visits": 2, "served_via": "in_memory", "degraded": True}
