"""The public listener's per-client limits, and the internal listener's absence of them."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.support.cluster import RunningCluster


async def _burst(
    base: str, path: str, count: int, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    """`count` GETs over 8 connections at once (below the 10-connection limit): fast enough to
    be over 100 r/s + burst 50 even on a loaded machine, where one connection is not."""
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        return list(
            await asyncio.gather(*(client.get(path, headers=headers) for _ in range(count)))
        )


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
    # Let the previous test's bucket drain (burst 50 at 100 r/s: 0.5 s). A sleep, not a poll:
    # the bucket's level cannot be read, only spent.
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        statuses = []
        for _ in range(60):
            started = time.monotonic()
            statuses.append((await client.get("/visits/limit-slow")).status_code)
            await asyncio.sleep(max(0.0, 0.025 - (time.monotonic() - started)))  # ~40 r/s
    assert statuses == [200] * 60


async def test_too_many_connections_from_one_client_get_429(cluster: RunningCluster) -> None:
    await asyncio.sleep(1.0)  # the previous test's bucket drains (see above)
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
    await asyncio.sleep(1.0)  # the previous test's bucket drains (see above)
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=cluster.gateway, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.get(
                    "/visits/limit-xff", headers={"X-Forwarded-For": f"10.9.{i // 250}.{i % 250}"}
                )
                for i in range(300)
            )
        )
    assert 429 in {r.status_code for r in responses}


async def test_the_internal_listener_has_no_limits(cluster: RunningCluster) -> None:
    responses = await _burst(cluster.internal, "/visits/limit-internal", 300)
    assert {r.status_code for r in responses} == {200}


async def _claims(base: str, campaign: int, count: int) -> tuple[list[httpx.Response], float]:
    """`count` gift-code claims at once by one visitor the campaign's banner was served to."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        served = await client.get(f"/api/campaigns/{campaign}/banner")
        assert served.status_code == 200
        started = time.monotonic()
        claims = await asyncio.gather(
            *(client.post(f"/api/campaigns/{campaign}/gift-code") for _ in range(count))
        )
        return list(claims), time.monotonic() - started


async def test_gift_code_claims_are_limited_per_client_on_the_public_listener(
    cluster: RunningCluster,
) -> None:
    claims, took_s = await _claims(cluster.gateway, 1011, 12)
    refused = [r for r in claims if r.status_code == 429]
    passed = [r for r in claims if r.status_code != 429]
    # 1 a second with a burst of 5 (QUARTET_GATEWAY_CLAIM_*): at most 6 at once, one more for
    # every second the burst took to send.
    assert refused, [r.status_code for r in claims]
    assert len(passed) <= 6 + int(took_s), (len(passed), took_s)
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].headers["content-type"] == "application/problem+json"
    # What passed is the banner service's own answer: the visitor's code, or none left.
    assert {r.status_code for r in passed} <= {200, 410}


async def test_the_internal_listener_does_not_limit_claims(cluster: RunningCluster) -> None:
    claims, _ = await _claims(cluster.internal, 1011, 12)
    assert {r.status_code for r in claims} <= {200, 410}
