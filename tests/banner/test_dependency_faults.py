"""Every public banner endpoint, through the gateway, while the campaign's Redis shard or MySQL is
killed (SIGKILL, kept down: connections refused) or stalled (SIGSTOP: connections accepted,
nothing answers): the status and how long it took. The table in docs/banner.md ("Faults") comes
from this test's output (`-s` prints it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from services.banner.giftcode_hints import holders_key, owner_key
from services.banner.visitors import COOKIE
from services.common.ring import ShardRing
from tests.banner.gift_code_records import visitor_id
from tests.banner.real_faults import MYSQL, killed, stalled
from tests.support.cluster import RunningCluster

CAMPAIGN = 1018
FAULTS = {"killed": killed, "stalled": stalled}
# (status, at most this many seconds) per endpoint and fault; None: the same as without a fault.
SERVED = (200, 1.0)
EXPECTED: dict[str, dict[str, tuple[int, float]]] = {
    "redis": {
        "mint": (201, 2.0),
        "claim, new visitor": (200, 1.5),
        "claim, returning visitor": (200, 1.5),
    },
    "mysql killed": {
        "mint": (503, 1.5),
        "claim, new visitor": (503, 1.5),
        "claim, returning visitor": (200, 1.0),  # from the Redis cache of bindings
    },
    "mysql stalled": {
        "mint": (503, 12.0),  # the mint's 10 s budget, below the gateway's 15 s
        "claim, new visitor": (503, 7.5),  # the claim's 5 s budget
        "claim, returning visitor": (200, 1.0),
    },
}


@pytest.mark.parametrize("dependency", ["redis", "mysql"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_every_endpoint_under_a_dependency_fault(
    cluster: RunningCluster, dependency: str, fault: str
) -> None:
    shard = ShardRing(cluster.topo.shard_names).shard_for(owner_key(CAMPAIGN))
    program = shard if dependency == "redis" else MYSQL
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    url = f"/api/campaigns/{CAMPAIGN}"
    async with (
        httpx.AsyncClient(base_url=cluster.internal, timeout=30) as anyone,
        httpx.AsyncClient(base_url=cluster.internal, timeout=30) as returning,
        httpx.AsyncClient(base_url=cluster.internal, timeout=30) as stranger,
    ):

        async def new_visitor_claims() -> httpx.Response:
            stranger.cookies.clear()  # a new visitor: it views the campaign, then claims
            await stranger.get(f"{url}/banner")
            return await stranger.post(f"{url}/gift-code")

        minted = await anyone.post(f"{url}/gift-codes", json={"count": 5}, headers=admin)
        assert minted.status_code == 201, minted.text
        await returning.get(f"{url}/banner")
        code = (await returning.post(f"{url}/gift-code")).json()["code"]
        await _cached(cluster, shard, visitor_id(returning.cookies[COOKIE]))
        banner = (await anyone.get(f"{url}/banner")).json()["banner_id"]
        requests: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "GET /campaigns/{id}": lambda: anyone.get(f"/campaigns/{CAMPAIGN}"),
            "GET /api/campaigns/{id}/banner": lambda: anyone.get(f"{url}/banner"),
            "GET /api/campaigns/{id}/banners": lambda: anyone.get(f"{url}/banners"),
            "GET /images/image_{id}.png": lambda: anyone.get(f"/images/image_{banner}.png"),
            "claim, new visitor": new_visitor_claims,
            "claim, returning visitor": lambda: returning.post(f"{url}/gift-code"),
            "mint": lambda: anyone.post(f"{url}/gift-codes", json={"count": 1}, headers=admin),
        }
        outcomes: dict[str, tuple[int, float]] = {}
        inject: Callable[[RunningCluster, str], AbstractContextManager[None]] = FAULTS[fault]
        with inject(cluster, program):
            for name, send in requests.items():
                started = time.monotonic()
                response = await send()
                outcomes[name] = (response.status_code, time.monotonic() - started)
                if name == "claim, returning visitor" and response.status_code == 200:
                    assert response.json()["code"] == code
        recovered = await _claims_again(cluster)

    print(f"\n{dependency} {fault}, recovered {recovered:.1f}s after the fault ended:")
    for name, (status, took) in outcomes.items():
        print(f"  {name:34} {status}  {took:.2f}s")
    key = "redis" if dependency == "redis" else f"mysql {fault}"
    for name, (status, took) in outcomes.items():
        want, within = EXPECTED[key].get(name, SERVED)
        assert status == want, (name, outcomes)
        assert took < within, (name, outcomes)


async def _cached(cluster: RunningCluster, shard: str, visitor: str) -> None:
    """The claim caches its binding after answering: wait for it before the fault."""
    client = cluster.redis(shard)
    deadline = time.monotonic() + 5
    try:
        while not client.hexists(holders_key(CAMPAIGN), visitor):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        client.close()


async def _claims_again(cluster: RunningCluster) -> float:
    """How long after the fault a new visitor's claim is answered 200 again."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=cluster.internal, timeout=30) as client:
        while True:
            client.cookies.clear()  # a new visitor: it views the campaign, then claims
            await client.get(f"/api/campaigns/{CAMPAIGN}/banner")
            if (await client.post(f"/api/campaigns/{CAMPAIGN}/gift-code")).status_code == 200:
                break
            assert time.monotonic() - started < 60
            await asyncio.sleep(0.2)
    return time.monotonic() - started
