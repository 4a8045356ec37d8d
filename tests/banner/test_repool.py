"""Adding a shard moves campaigns' gift-code pools away from their claims: the repool command puts
every unclaimed code back on the new owner, and no code is ever given twice (real Redis servers,
the test cluster's MariaDB)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis import Redis

from services.banner.giftcodes import GiftCodes, owner_key, pool_keys
from services.common.mysql import connect_blocking, create_pool
from services.common.problems import Gone
from services.common.redis_shards import RedisShards
from services.common.ring import ShardRing
from tests.support.cluster import RunningCluster
from tests.support.processes import redis_server

CAMPAIGNS = range(910_001, 910_021)
PER_CAMPAIGN = 5


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[dict[str, str]]:
    with redis_server(tmp_path / "a") as a, redis_server(tmp_path / "b") as b:
        yield {"old": f"redis://127.0.0.1:{a}", "new": f"redis://127.0.0.1:{b}"}


@pytest.fixture
async def clean_codes(cluster: RunningCluster) -> AsyncIterator[None]:
    def forget() -> None:
        conn = connect_blocking(cluster.mysql_dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "DELETE FROM gift_codes WHERE campaign_id BETWEEN %s AND %s",
                    (CAMPAIGNS[0], CAMPAIGNS[-1]),
                )
            conn.commit()
        finally:
            conn.close()

    forget()
    yield
    forget()


def _shards(urls: dict[str, str]) -> RedisShards:
    return RedisShards(urls, pool_size=8, timeout_s=2)


def _repool(cluster: RunningCluster, old: dict[str, str], new: dict[str, str]) -> str:
    def spec(shards: dict[str, str]) -> str:
        return ",".join(f"{name}={url}" for name, url in shards.items())

    result = subprocess.run(
        [sys.executable, "-m", "services.banner.repool", "--from", spec(old), "--to", spec(new)],
        env={"MYSQL_DSN": cluster.mysql_dsn, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.mark.usefixtures("clean_codes")
async def test_after_a_new_shard_every_unclaimed_code_is_claimable_once(
    cluster: RunningCluster, two_servers: dict[str, str]
) -> None:
    before = {"shard_a": two_servers["old"]}
    after = {**before, "shard_b": two_servers["new"]}
    moved = [c for c in CAMPAIGNS if ShardRing(after).shard_for(owner_key(c)) == "shard_b"]
    assert moved, "the new shard owns none of the test's campaigns"
    mysql = await create_pool(cluster.mysql_dsn, size=4)
    old_shards, new_shards = _shards(before), _shards(after)
    try:
        old_codes = GiftCodes(old_shards, mysql)
        early: dict[tuple[int, str], str] = {}
        for campaign in CAMPAIGNS:
            await old_codes.mint(campaign, PER_CAMPAIGN)
            early[(campaign, "early")] = await old_codes.claim(campaign, "early")

        new_codes = GiftCodes(new_shards, mysql)
        # The problem: the moved campaigns' pools stayed on the old shard.
        with pytest.raises(Gone):
            await new_codes.claim(moved[0], "stranded")

        # The shared test database may hold other tests' unclaimed codes too: at least every
        # unclaimed code of the moved campaigns was missing on its new owner.
        report = _repool(cluster, before, after)
        pooled = int(re.search(r"(\d+) codes pooled again", report)[1])  # type: ignore[index]
        assert pooled >= len(moved) * (PER_CAMPAIGN - 1), report

        old_client = Redis.from_url(two_servers["old"])
        try:
            for campaign in moved:
                assert not old_client.exists(*pool_keys(campaign))
        finally:
            old_client.close()

        given: list[str] = []
        for campaign in CAMPAIGNS:
            # A visitor who claimed before the move keeps the same code.
            assert await new_codes.claim(campaign, "early") == early[(campaign, "early")]
            for visitor in range(PER_CAMPAIGN - 1):
                given.append(await new_codes.claim(campaign, f"v{visitor}"))
            with pytest.raises(Gone):
                await new_codes.claim(campaign, "one too many")
        assert len(given) == len(set(given)) == len(CAMPAIGNS) * (PER_CAMPAIGN - 1)
        assert not set(given) & set(early.values())

        # Again: nothing left to do.
        assert "0 codes pooled again, 0 keys" in _repool(cluster, before, after)
    finally:
        await old_shards.close()
        await new_shards.close()
        mysql.close()
        await mysql.wait_closed()


@pytest.mark.usefixtures("clean_codes")
async def test_codes_claimed_while_pooled_twice_are_never_given_twice(
    cluster: RunningCluster, two_servers: dict[str, str]
) -> None:
    shards = {"only": two_servers["old"]}
    mysql = await create_pool(cluster.mysql_dsn, size=4)
    redis = _shards(shards)
    try:
        codes = GiftCodes(redis, mysql)
        campaign = CAMPAIGNS[0]
        await codes.mint(campaign, 10)
        # Half are claimed, then the pool is refilled from a stale snapshot (every code again):
        # what a repool racing with claims, or a restored shard, can leave behind.
        client = redis.clients["only"]
        snapshot = await client.lrange(pool_keys(campaign)[0], 0, -1)
        first = [await codes.claim(campaign, f"a{i}") for i in range(5)]
        await client.rpush(pool_keys(campaign)[0], *snapshot)
        rest = await asyncio.gather(*(codes.claim(campaign, f"b{i}") for i in range(5)))
        assert len(set(first) | set(rest)) == 10
        with pytest.raises(Gone):
            await codes.claim(campaign, "c")
    finally:
        await redis.close()
        mysql.close()
        await mysql.wait_closed()
