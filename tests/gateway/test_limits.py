"""The public listener's per-client limits, and the internal listener's absence of them."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.support.cluster import RunningCluster


async def _burst(
    base: str, path: str, count: int, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base) as client:
        return [await client.get(path, headers=headers) for _ in range(count)]


async def test_above_the_rate_a_client_gets_429_json_with_retry_after(
    cluster: RunningCluster,
) -> None:
    responses = await _burst(cluster.gateway, "/visits/limit-test", 300)
    refused = [r for r in responses if r.status_code == 429]
    assert refused, "300 back-to-back requests stayed under 100 r/s + burst 50"
    assert {r.status_code for r in responses} == {200, 429}
    sample = refused[0]
    assert sample.headers["retry-after"] == "1"
    assert sample.headers["content-type"] == "application/problem+json"
    assert sample.json()["status"] == 429
    assert len(sample.headers["x-request-id"]) == 32


async def test_below_the_rate_nobody_is_refused(cluster: RunningCluster) -> None:
    await asyncio.sleep(1.0)  # let the previous test's bucket drain
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        statuses = []
        for _ in range(60):
            started = time.monotonic()
            statuses.append((await client.get("/visits/limit-slow")).status_code)
            await asyncio.sleep(max(0.0, 0.025 - (time.monotonic() - started)))  # ~40 r/s
    assert statuses == [200] * 60


async def test_too_many_connections_from_one_client_get_429(cluster: RunningCluster) -> None:
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(
        base_url=cluster.gateway, limits=httpx.Limits(max_connections=30), timeout=10
    ) as client:
        # Each holds its connection for 400 ms: 30 at once is over the 10-connection limit.
        responses = await asyncio.gather(
            *(client.get("/api/within-timeout", params={"timeout": 400}) for _ in range(30))
        )
    statuses = [r.status_code for r in responses]
    assert 200 in statuses
    assert 429 in statuses
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 429)


async def test_a_forged_forwarded_for_does_not_escape_the_limit(cluster: RunningCluster) -> None:
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        responses = [
            await client.get(
                "/visits/limit-xff", headers={"X-Forwarded-For": f"10.9.{i // 250}.{i % 250}"}
            )
            for i in range(300)
        ]
    assert 429 in {r.status_code for r in responses}


async def test_the_internal_listener_has_no_limits(cluster: RunningCluster) -> None:
    responses = await _burst(cluster.internal, "/visits/limit-internal", 300)
    assert {r.status_code for r in responses} == {200}
