"""A reshard cannot strand a gift code any more (MySQL alone decides), and the repool command
tidies what shards hold: caches a shard no longer owns, and the old design's pools and claim maps,
whose unrecorded bindings it records first (real Redis servers, the test cluster's MariaDB)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis import Redis

from services.banner.giftcode_hints import owner_key
from services.banner.giftcodes import GiftCodes
from services.common.mysql import create_pool
from services.common.problems import Gone
from services.common.redis_shards import RedisShards
from services.common.ring import ShardRing
from tests.banner.gift_code_records import bindings, query, unclaimed
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
    sql = "DELETE FROM gift_codes WHERE campaign_id BETWEEN %s AND %s"
    query(cluster, sql, CAMPAIGNS[0], CAMPAIGNS[-1])
    yield
    query(cluster, sql, CAMPAIGNS[0], CAMPAIGNS[-1])


def _shards(urls: dict[str, str]) -> RedisShards:
    return RedisShards(urls, pool_size=8, timeout_s=2)


def _spec(shards: dict[str, str]) -> str:
    return ",".join(f"{name}={url}" for name, url in shards.items())


def _repool(cluster: RunningCluster, old: dict[str, str], new: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.banner.repool", "--from", _spec(old), "--to", _spec(new)],
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
    old_codes, new_codes = GiftCodes(old_shards, mysql), GiftCodes(new_shards, mysql)
    try:
        early: dict[tuple[int, str], str] = {}
        for campaign in CAMPAIGNS:
            await old_codes.mint(campaign, PER_CAMPAIGN)
            early[(campaign, "early")] = await old_codes.claim(campaign, "early")

        # No repool first: the new owners have nothing, and need nothing.
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

        # Every key the old shard keeps for campaigns it no longer owns goes (the bindings
        # cache, the candidates: at least one per moved campaign); again: nothing.
        report = _repool(cluster, before, after)
        dropped = re.search(r"(\d+) keys left on shards that no longer own their campaign", report)
        assert dropped is not None, report
        assert int(dropped[1]) >= len(moved)
        old_client = Redis.from_url(two_servers["old"])
        try:
            assert not any(old_client.keys(f"{owner_key(c)}:*") for c in moved)
        finally:
            old_client.close()
        assert "0 legacy pool and claim-map keys deleted, 0 keys" in _repool(cluster, before, after)
    finally:
        await old_codes.close()
        await new_codes.close()
        await old_shards.close()
        await new_shards.close()
        mysql.close()
        await mysql.wait_closed()


@pytest.mark.usefixtures("clean_codes")
async def test_a_legacy_claim_map_is_recorded_and_its_pool_never_used(
    cluster: RunningCluster, two_servers: dict[str, str]
) -> None:
    shards = {"only": two_servers["old"]}
    campaign = CAMPAIGNS[0]
    mysql = await create_pool(cluster.mysql_dsn, size=4)
    redis = _shards(shards)
    codes = GiftCodes(redis, mysql)
    try:
        await codes.mint(campaign, 4)
        recorded = await codes.claim(campaign, "recorded")
        free = [
            str(row[0])
            for row in query(
                cluster,
                "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL",
                campaign,
            )
        ]
        # What the old claim left after a lost reply: a visitor told a code MySQL never
        # recorded, and a pool listing codes, claimed ones among them.
        client = redis.clients["only"]
        await client.hset(f"{owner_key(campaign)}:claims", mapping={"told": free[0]})
        await client.rpush(f"{owner_key(campaign)}:pool", recorded, *free)
        report = _repool(cluster, shards, shards)
        assert report.startswith("1 legacy claims recorded in MySQL, 2 legacy pool and claim-map")
        assert bindings(cluster, campaign) == {"recorded": recorded, "told": free[0]}
        assert await codes.claim(campaign, "told") == free[0]
        others = {await codes.claim(campaign, f"o{i}") for i in range(2)}
        assert others == set(free[1:])
        with pytest.raises(Gone):
            await codes.claim(campaign, "late")
        assert unclaimed(cluster, campaign) == 0
    finally:
        await codes.close()
        await redis.close()
        mysql.close()
        await mysql.wait_closed()
