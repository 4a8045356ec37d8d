"""Gift codes exactly once under faults: a lost reply or a death after any step of a claim (at the
exact step, test_a_fault_after_any_step...), the instances SIGKILLed mid-load, MySQL stalled
while the visitor retries, a repool afterwards. Never one code to two visitors, never a code held
by no one for good, never an unbounded loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import aiomysql
import httpx
import pytest
from redis.exceptions import RedisError

from services.banner.giftcode_hints import candidates_key, owner_key
from services.banner.giftcodes import CANDIDATE_ATTEMPTS, GiftCodes
from services.banner.minting import MINT_KEY_RETENTION_S
from services.banner.visitors import COOKIE
from services.common.mysql import create_pool
from services.common.problems import Gone, ServiceError
from services.common.redis_shards import RedisShards
from services.common.settings import parse_shards
from tests.banner.gift_code_records import bindings, query, unclaimed, visitor_id
from tests.banner.real_faults import MYSQL, gunicorn_pids, sigkill, stalled
from tests.banner.step_faults import Killed, StepFaults
from tests.support import refusals
from tests.support.cluster import RunningCluster

INSTANCES = ("banner_1", "banner_2")
STEP_CAMPAIGNS = {
    "lost": 930_001,
    "killed": 930_002,
    "stale": 930_003,
    "lost-transaction": 930_004,
    "killed-transaction": 930_005,
    "stale-candidates": 930_006,
    "mint-lost": 930_007,
    "mint-killed": 930_008,
    "mint-keys": 930_009,
}


def repool(cluster: RunningCluster) -> str:
    shards = cluster.topo.redis_shards
    return subprocess.run(
        [sys.executable, "-m", "services.banner.repool", "--from", shards, "--to", shards],
        env={"MYSQL_DSN": cluster.mysql_dsn, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def clean_codes(cluster: RunningCluster) -> Iterator[None]:
    def forget() -> None:
        ids = sorted(STEP_CAMPAIGNS.values())
        for table in ("gift_codes", "gift_code_mints"):
            query(
                cluster,
                f"DELETE FROM {table} WHERE campaign_id BETWEEN %s AND %s",
                ids[0],
                ids[-1],
            )
        for shard in cluster.topo.shard_names:
            client = cluster.redis(shard)
            try:
                for campaign in ids:
                    for key in client.scan_iter(match=f"{owner_key(campaign)}:*"):
                        client.delete(key)
            finally:
                client.close()

    forget()
    yield
    forget()


@pytest.fixture
async def gift_codes(cluster: RunningCluster) -> AsyncIterator[GiftCodes]:
    shards = RedisShards(parse_shards(cluster.topo.redis_shards), pool_size=8, timeout_s=2)
    mysql = await create_pool(cluster.mysql_dsn, size=4)
    codes = GiftCodes(shards, mysql)
    try:
        yield codes
    finally:
        await codes.close()
        await shards.close()
        mysql.close()
        await mysql.wait_closed()


@pytest.mark.usefixtures("clean_codes")
@pytest.mark.parametrize("path", ["candidate", "transaction"])
@pytest.mark.parametrize("kind", ["lost", "killed"])
async def test_a_fault_after_any_step_of_a_claim_gives_no_code_twice_and_strands_none(
    cluster: RunningCluster,
    gift_codes: GiftCodes,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    path: str,
) -> None:
    campaign = STEP_CAMPAIGNS[kind if path == "candidate" else f"{kind}-transaction"]
    minted = 20
    if path == "transaction":
        # No candidate is ever pushed (neither by the mint nor by a refill): every claim takes
        # the fallback, the SKIP LOCKED transaction, as when the list is empty or Redis fails.
        async def no_push(codes: GiftCodes, campaign_id: int, pushed: object) -> None:
            return None

        monkeypatch.setattr(GiftCodes, "_push", no_push)
    faults = StepFaults(monkeypatch)
    codes = gift_codes
    await codes.mint(campaign, minted)
    # The first claim of a process also loads the Redis script (SCRIPT LOAD): not a step of
    # every claim, so the probe is the second.
    handed = {"warm-up": await codes.claim(campaign, "warm-up")}
    with faults.armed():
        handed["probe"] = await codes.claim(campaign, "probe")
    steps = list(faults.steps)
    if path == "candidate":
        assert steps == ["redis EVALSHA", "mysql UPDATE"], steps  # one round trip to each
    else:
        assert steps[0] == "redis EVALSHA", steps
        assert "mysql BEGIN" in steps, steps

    fired = []
    for n in range(1, len(steps) + 1):
        visitor = f"{kind}-{n}"
        # The visitor sees an error, or nothing at all (its server died).
        errors = (ServiceError, RedisError, aiomysql.Error, OSError, Killed)
        with faults.armed(at=n, kind=kind), contextlib.suppress(*errors):
            handed[visitor] = await codes.claim(campaign, visitor)
        fired.append(faults.fired)
        # The visitor asks again: a retry, or its next visit after the crash.
        again = await codes.claim(campaign, visitor)
        assert handed.setdefault(visitor, again) == again, (steps, faults.fired)
    assert all(fired), (steps, fired)

    repool(cluster)
    for i in range(minted + 1):
        try:
            handed[f"after-{i}"] = await codes.claim(campaign, f"after-{i}")
        except Gone:
            break
    assert len(handed) == len(set(handed.values())) == minted, (steps, handed)
    assert bindings(cluster, campaign) == handed, steps
    assert unclaimed(cluster, campaign) == 0


@pytest.mark.usefixtures("clean_codes")
async def test_a_pool_full_of_stale_codes_answers_410_without_recursing(
    cluster: RunningCluster, gift_codes: GiftCodes
) -> None:
    campaign = STEP_CAMPAIGNS["stale"]
    await gift_codes.mint(campaign, 3)
    claimed = [await gift_codes.claim(campaign, f"v{i}") for i in range(3)]
    # What a repool racing with claims, or a shard restored from an old snapshot, left behind in
    # the pool Redis used to hold: codes claimed long ago, many times over.
    client = cluster.redis(gift_codes.shards.owner(owner_key(campaign))[0])
    try:
        client.rpush(f"{owner_key(campaign)}:pool", *(claimed * 700))
    finally:
        client.close()
    async with asyncio.timeout(10):
        with pytest.raises(Gone):
            await gift_codes.claim(campaign, "late")
    assert len(set(bindings(cluster, campaign).values())) == 3


@pytest.mark.usefixtures("clean_codes")
async def test_a_candidate_list_of_stale_codes_costs_a_bounded_few_tries_then_is_dropped(
    cluster: RunningCluster, gift_codes: GiftCodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = STEP_CAMPAIGNS["stale-candidates"]
    await gift_codes.mint(campaign, 4)
    claimed = [await gift_codes.claim(campaign, f"v{i}") for i in range(3)]
    # A shard restored from an old snapshot: the list offers codes claimed long ago, many times.
    client = cluster.redis(gift_codes.shards.owner(owner_key(campaign))[0])
    try:
        client.delete(candidates_key(campaign))
        client.rpush(candidates_key(campaign), *(claimed * 700))
        faults = StepFaults(monkeypatch)
        async with asyncio.timeout(10):
            with faults.armed():
                last = await gift_codes.claim(campaign, "late")
            with pytest.raises(Gone):
                await gift_codes.claim(campaign, "later")
        # CANDIDATE_ATTEMPTS stale candidates, then the transaction found the one left.
        assert faults.steps.count("mysql UPDATE") == CANDIDATE_ATTEMPTS + 1, faults.steps
        assert "mysql BEGIN" in faults.steps
        deadline = time.monotonic() + 5
        while client.llen(candidates_key(campaign)):
            assert time.monotonic() < deadline, "the stale list was not dropped"
            await asyncio.sleep(0.05)
    finally:
        client.close()
    assert bindings(cluster, campaign) == {
        **{f"v{i}": code for i, code in enumerate(claimed)},
        "late": last,
    }


@pytest.mark.usefixtures("clean_codes")
async def test_an_empty_candidate_list_is_refilled_from_mysql(
    cluster: RunningCluster, gift_codes: GiftCodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = STEP_CAMPAIGNS["stale"]
    await gift_codes.mint(campaign, 5)
    client = cluster.redis(gift_codes.shards.owner(owner_key(campaign))[0])
    try:
        client.delete(candidates_key(campaign))  # a shard that came back empty, a reshard
        faults = StepFaults(monkeypatch)
        with faults.armed():
            first = await gift_codes.claim(campaign, "first")
        assert "mysql BEGIN" in faults.steps, faults.steps  # the transaction, while it refills
        deadline = time.monotonic() + 5
        while client.llen(candidates_key(campaign)) == 0:
            assert time.monotonic() < deadline, "the candidates were not refilled"
            await asyncio.sleep(0.05)
        with faults.armed():
            second = await gift_codes.claim(campaign, "second")
        assert faults.steps == ["redis EVALSHA", "mysql UPDATE"], faults.steps
    finally:
        client.close()
    assert bindings(cluster, campaign) == {"first": first, "second": second}


async def test_mysql_stalled_while_the_visitor_retries(cluster: RunningCluster) -> None:
    campaign = 1016
    url = f"/api/campaigns/{campaign}/gift-code"
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    async with httpx.AsyncClient(base_url=cluster.internal, timeout=30) as visitor:
        minted = await visitor.post(
            f"/api/campaigns/{campaign}/gift-codes", json={"count": 5}, headers=admin
        )
        assert minted.status_code == 201
        # A new visitor views the campaign (serving needs no MySQL), then claims while MySQL is
        # frozen, and asks again.
        assert (await visitor.get(f"/api/campaigns/{campaign}/banner")).status_code == 200
        first_cookie = visitor.cookies[COOKIE]
        tries: list[tuple[int, float]] = []
        with stalled(cluster, MYSQL):
            for _ in range(2):
                started = time.monotonic()
                answer = await visitor.post(url)
                tries.append((answer.status_code, time.monotonic() - started))
                assert answer.headers["content-type"] == "application/problem+json"
        deadline = time.monotonic() + 15
        while (final := await visitor.post(url)).status_code != 200:
            assert time.monotonic() < deadline, final.text
            await asyncio.sleep(0.2)
        repeat = await visitor.post(url)
        cookie = visitor.cookies[COOKIE]

    assert [status for status, _ in tries] == [503, 503]
    assert all(took < 8 for _, took in tries), tries  # the claim's 5 s budget, not nginx's 15 s
    # The retries were the same visitor: the cookie its banner view gave it.
    assert visitor_id(first_cookie) == visitor_id(cookie)
    assert final.json()["code"] == repeat.json()["code"]
    assert bindings(cluster, campaign) == {visitor_id(cookie): final.json()["code"]}


async def test_instances_killed_mid_claims_then_every_visitor_asks_again(
    cluster: RunningCluster,
) -> None:
    campaign, minted, visitors = 1017, 300, 400
    base = f"{cluster.internal}/api/campaigns/{campaign}"
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        async with session.post(f"{base}/gift-codes", json={"count": minted}, headers=admin) as r:
            assert r.status == 201

        async def page_view() -> str:
            # A browser has the visitor cookie from the campaign page before it claims; a view
            # admission control refused (400 at once on a loaded machine) it asks again after
            # Retry-After, as a browser reloading would.
            for _ in range(refusals.RETRIES):
                async with session.get(f"{base}/banner") as r:
                    body = await r.read()
                    if not refusals.is_refusal(r.status, r.headers, body):
                        return r.cookies[COOKIE].value
                    wait = refusals.retry_after_s(r.headers)
                await asyncio.sleep(wait)
            raise AssertionError(f"a campaign view refused {refusals.RETRIES} times")

        cookies = await asyncio.gather(*(page_view() for _ in range(visitors)))
        first: dict[int, tuple[int, str | None]] = {}

        async def claim(i: int) -> tuple[int, str | None]:
            try:
                async with session.post(
                    f"{base}/gift-code", headers={"Cookie": f"{COOKIE}={cookies[i]}"}
                ) as r:
                    body = await r.json(content_type=None)
                    return r.status, body.get("code") if r.status == 200 else None
            except aiohttp.ClientError:
                return 0, None  # the connection died with the instance

        async def first_claim(i: int) -> None:
            first[i] = await claim(i)

        pids = [pid for name in INSTANCES for pid in gunicorn_pids(cluster, name)]
        load = [asyncio.create_task(first_claim(i)) for i in range(visitors)]
        deadline = time.monotonic() + 20
        while len(first) < visitors // 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        sigkill(pids)
        await asyncio.gather(*load)
        for name in INSTANCES:
            await asyncio.to_thread(cluster.wait_ready, name)

        final: dict[int, tuple[int, str | None]] = {}
        for i in range(visitors):
            deadline = time.monotonic() + 15
            while (answer := await claim(i))[0] not in (200, 410):
                assert time.monotonic() < deadline, answer
                await asyncio.sleep(0.1)
            final[i] = answer

    assert any(status not in (200, 410) for status, _ in first.values()), "the kill hit nothing"
    for i, (status, code) in first.items():
        if status == 200:
            assert final[i] == (200, code)  # asked again: the same code
    handed = {visitor_id(cookies[i]): code for i, (status, code) in final.items() if code}
    assert len(handed) == len(set(handed.values())) == minted
    assert sum(status == 410 for status, _ in final.values()) == visitors - minted
    assert bindings(cluster, campaign) == handed
    assert unclaimed(cluster, campaign) == 0


@pytest.mark.usefixtures("clean_codes")
@pytest.mark.parametrize("kind", ["lost", "killed"])
async def test_a_keyed_mint_faulted_after_any_step_and_retried_mints_once(
    cluster: RunningCluster, gift_codes: GiftCodes, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    campaign, count = STEP_CAMPAIGNS[f"mint-{kind}"], 7
    faults = StepFaults(monkeypatch)
    with faults.armed():
        probe = await gift_codes.mint(campaign, count, key="probe")
    steps = list(faults.steps)
    assert steps[:3] == ["mysql BEGIN", "mysql INSERT", "mysql INSERT"], steps  # key, codes
    assert steps[-1] == "mysql COMMIT", steps
    expected = count
    for n in range(1, len(steps) + 1):
        key = f"{kind}-{n}"
        # The admin sees an error (a 503, a 502 from a dead instance, a 504), or nothing at all.
        errors = (ServiceError, aiomysql.Error, OSError, Killed)
        with faults.armed(at=n, kind=kind), contextlib.suppress(*errors):
            await gift_codes.mint(campaign, count, key=key)
        assert faults.fired == steps[n - 1]
        # The admin retries with the same key: minted once, whether the first try committed.
        again = await gift_codes.mint(campaign, count, key=key)
        expected += count
        assert (again.requested, again.minted) == (count, count)
        assert again.replayed == (faults.fired == "mysql COMMIT"), (faults.fired, again)
        assert _codes(cluster, campaign) == expected, (steps, faults.fired)
    assert probe.available == count
    # A replay of the probe answers what it answered then.
    assert await gift_codes.mint(campaign, count, key="probe") == dataclasses.replace(
        probe, replayed=True
    )
    assert _codes(cluster, campaign) == expected


@pytest.mark.usefixtures("clean_codes")
async def test_mint_keys_are_forgotten_after_their_retention(
    cluster: RunningCluster, gift_codes: GiftCodes
) -> None:
    campaign = STEP_CAMPAIGNS["mint-keys"]
    await gift_codes.mint(campaign, 1, key="old")
    query(
        cluster,
        "UPDATE gift_code_mints SET created_at = NOW(6) - INTERVAL %s SECOND"
        " WHERE campaign_id = %s AND idem_key = 'old'",
        MINT_KEY_RETENTION_S + 60,
        campaign,
    )
    await gift_codes.mint(campaign, 1, key="new")
    deadline = time.monotonic() + 5
    while _keys(cluster, campaign) != ["new"]:
        assert time.monotonic() < deadline, _keys(cluster, campaign)
        await asyncio.sleep(0.05)
    # Forgotten, the old key mints again (a retry a day late is a new mint).
    assert not (await gift_codes.mint(campaign, 1, key="old")).replayed
    assert _codes(cluster, campaign) == 3


def _codes(cluster: RunningCluster, campaign: int) -> int:
    rows = query(cluster, "SELECT COUNT(*) FROM gift_codes WHERE campaign_id = %s", campaign)
    return int(str(rows[0][0]))


def _keys(cluster: RunningCluster, campaign: int) -> list[str]:
    rows = query(cluster, "SELECT idem_key FROM gift_code_mints WHERE campaign_id = %s", campaign)
    return sorted(str(row[0]) for row in rows)
