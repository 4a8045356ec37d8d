"""Gift codes through the gateway: minted by an admin, claimed concurrently, never given twice."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import httpx

from services.banner.visitors import COOKIE
from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from tests.support.cluster import RunningCluster


def _admin(cluster: RunningCluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.admin_token}"}


def _claims_in_mysql(cluster: RunningCluster, campaign: int) -> tuple[int, int, int]:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*), COUNT(DISTINCT code), COUNT(DISTINCT visitor) FROM gift_codes"
                " WHERE campaign_id = %s AND visitor IS NOT NULL",
                (campaign,),
            )
            row = cur.fetchone()
            assert row is not None
            return int(row[0]), int(row[1]), int(row[2])
    finally:
        conn.close()


async def test_1000_visitors_race_for_800_codes(cluster: RunningCluster) -> None:
    campaign = 1012
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        minted = await client.post(
            f"/api/campaigns/{campaign}/gift-codes", json={"count": 800}, headers=_admin(cluster)
        )
    assert minted.status_code == 201, minted.text
    assert minted.json() == {"campaign_id": campaign, "minted": 800, "available": 800}

    statuses: Counter[int] = Counter()
    codes: list[str] = []
    # No cookie jar: every request is a new visitor.
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def claim() -> None:
            url = f"{cluster.internal}/api/campaigns/{campaign}/gift-code"
            cookie: dict[str, str] = {}
            # A 503 (MySQL did not confirm in time: a busy 2-core machine) is asked again, as the
            # same visitor: its cookie came with the 503. With the candidate claim, one try each
            # measured 800 x 200, 198 x 410, 2 x 503 (load average 5): at the pool's end, where
            # the last claims fall to the transaction (docs/banner.md).
            for _ in range(10):
                async with session.post(url, headers=cookie) as r:
                    body = await r.json(content_type=None)
                    if r.status != 503:
                        break
                    cookie = {"Cookie": f"{COOKIE}={r.cookies[COOKIE].value}"}
            statuses[r.status] += 1
            if r.status == 200:
                codes.append(body["code"])
            else:
                assert body["status"] == r.status

        await asyncio.gather(*(claim() for _ in range(1000)))

    assert statuses == Counter({200: 800, 410: 200})
    assert len(set(codes)) == 800
    assert _claims_in_mysql(cluster, campaign) == (800, 800, 800)
    # The pool gauge the dashboards read: empty now, as last seen by the instances.
    async with httpx.AsyncClient() as client:
        gauges = [
            (await client.get(f"{cluster.instance_url(name)}/metrics")).text
            for name in ("banner_1", "banner_2")
        ]
    assert any(f'banner_gift_codes_available{{campaign="{campaign}"}} 0.0' in g for g in gauges)
    assert all('banner_gift_code_claims_total{result="pool_empty"}' in g for g in gauges)


async def test_a_visitor_asking_again_gets_the_same_code(cluster: RunningCluster) -> None:
    campaign = 1013
    async with (
        httpx.AsyncClient(base_url=cluster.gateway) as client,
        httpx.AsyncClient(base_url=cluster.gateway) as stranger,
    ):
        await client.post(
            f"/api/campaigns/{campaign}/gift-codes", json={"count": 5}, headers=_admin(cluster)
        )
        first = await client.post(f"/api/campaigns/{campaign}/gift-code")
        again = await client.post(f"/api/campaigns/{campaign}/gift-code")
        other = await stranger.post(f"/api/campaigns/{campaign}/gift-code")
    assert first.status_code == again.status_code == other.status_code == 200
    assert first.json()["code"] == again.json()["code"] != other.json()["code"]


async def test_minting_needs_the_admin_token_and_a_sane_count(cluster: RunningCluster) -> None:
    url = "/api/campaigns/1014/gift-codes"
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        anonymous = await client.post(url, json={"count": 1})
        wrong = await client.post(url, json={"count": 1}, headers={"Authorization": "Bearer x"})
        zero = await client.post(url, json={"count": 0}, headers=_admin(cluster))
        huge = await client.post(url, json={"count": 10**9}, headers=_admin(cluster))
        garbage = await client.post(url, content=b"{not json", headers=_admin(cluster))
        unknown = await client.post(
            "/api/campaigns/987654/gift-codes", json={"count": 1}, headers=_admin(cluster)
        )
    assert anonymous.status_code == wrong.status_code == 401
    assert zero.status_code == 422
    assert huge.status_code == 400
    assert garbage.status_code == 422
    assert unknown.status_code == 404
    for response in (anonymous, zero, huge, garbage, unknown):
        assert response.headers["content-type"] == "application/problem+json"


async def test_minting_and_claiming_need_no_redis(cluster: RunningCluster) -> None:
    campaign = 1015
    shard = ShardRing(cluster.topo.shard_names).shard_for(f"giftcodes:{campaign}")
    await asyncio.to_thread(cluster.ctl, "stop", shard)
    try:
        async with httpx.AsyncClient(base_url=cluster.gateway) as client:
            minted = await client.post(
                f"/api/campaigns/{campaign}/gift-codes", json={"count": 10}, headers=_admin(cluster)
            )
            claimed = await client.post(f"/api/campaigns/{campaign}/gift-code")
            again = await client.post(f"/api/campaigns/{campaign}/gift-code")
    finally:
        await asyncio.to_thread(cluster.ctl, "start", shard)
    assert minted.status_code == 201, minted.text
    assert minted.json() == {"campaign_id": campaign, "minted": 10, "available": 10}
    assert claimed.status_code == again.status_code == 200
    assert claimed.json()["code"] == again.json()["code"]
    assert _claims_in_mysql(cluster, campaign) == (1, 1, 1)
