"""What a hard kill of an instance costs, and the ledger's bound while MySQL is down: private
instances on scratch shards (the cluster's MySQL), faults produced for real."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import httpx

from tests.counter.conftest import (
    CounterInstance,
    ScratchShards,
    StartCounter,
    ledger_total,
    wait_until,
)
from tests.support.cluster import RunningCluster
from tests.support.faults import mysql_answers

# Entries a killed instance read but did not finish are claimed after this (short, for the test).
FAST_CLAIM = {"COUNTER_LEDGER_CLAIM_IDLE_S": "2"}
TOTAL = 6000


class Load:
    """POSTs for one page, 50 at a time, each answer's status and time kept."""

    def __init__(self, url: str, total: int = TOTAL) -> None:
        self.url, self.total = url, total
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.ok_at: list[float] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def worker() -> None:
                while self.sent < self.total:
                    self.sent += 1
                    try:
                        async with session.post(self.url) as response:
                            await response.read()
                    except (aiohttp.ClientError, TimeoutError):
                        self.errors += 1
                        continue
                    self.statuses[response.status] += 1
                    if response.status == 200:
                        self.ok_at.append(time.monotonic())

            await asyncio.gather(*(worker() for _ in range(50)))

    async def killed_midway(self, instance: CounterInstance, after_ok: int) -> float:
        """SIGKILL the instance once `after_ok` POSTs were answered 200; the kill's time."""
        deadline = time.monotonic() + 60
        while len(self.ok_at) < after_ok and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        instance.kill()
        killed_at = time.monotonic()
        await self.task
        return killed_at


def _redis_and_ledger(shards: ScratchShards, cluster: RunningCluster, page: str) -> tuple[int, int]:
    return shards.count(page), ledger_total(cluster, page)


async def test_commit_mode_sigkill_loses_no_acknowledged_visit_in_redis_or_the_ledger(
    cluster: RunningCluster, scratch_shards: ScratchShards, start_counter: StartCounter
) -> None:
    page = scratch_shards.page_on("a")
    victim = start_counter(
        scratch_shards.spec, COUNTER_ACK="commit", WEB_CONCURRENCY="2", **FAST_CLAIM
    )
    load = Load(f"{victim.url}/visits/{page}")
    await load.killed_midway(victim, after_ok=TOTAL // 3)
    acknowledged = load.statuses[200]
    assert acknowledged >= TOTAL // 3, (load.statuses, load.errors)
    # Another instance (here: the restarted one) claims what the dead one left and catches up.
    start_counter(scratch_shards.spec, **FAST_CLAIM)
    in_redis = scratch_shards.count(page)
    # Every 200 is in Redis; beyond them only visits applied but unanswered, or answered 202.
    assert acknowledged <= in_redis <= acknowledged + load.statuses[202] + load.errors
    ledger = await wait_until(lambda: ledger_total(cluster, page), in_redis, timeout_s=30)
    assert ledger == in_redis, (acknowledged, in_redis, ledger)


async def test_batch_mode_sigkill_loses_at_most_the_last_flush_interval(
    cluster: RunningCluster, scratch_shards: ScratchShards, start_counter: StartCounter
) -> None:
    interval_s = 1.0
    page = scratch_shards.page_on("b")
    victim = start_counter(
        scratch_shards.spec,
        COUNTER_FLUSH_INTERVAL_S=str(interval_s),
        WEB_CONCURRENCY="2",
        **FAST_CLAIM,
    )
    load = Load(f"{victim.url}/visits/{page}", total=20_000)
    killed_at = await load.killed_midway(victim, after_ok=8000)
    start_counter(scratch_shards.spec, **FAST_CLAIM)
    acknowledged = load.statuses[200]
    in_redis = scratch_shards.count(page)
    lost = acknowledged - in_redis
    # A batch is in Redis or not at all: what is lost is what had not been flushed yet, i.e. at
    # most the visits acknowledged during the last flush interval (and the flush's own time).
    recent = sum(1 for t in load.ok_at if t > killed_at - interval_s - 0.5)
    elapsed = load.ok_at[-1] - load.ok_at[0]
    print(
        f"\nbatch mode, SIGKILL: {lost} of {acknowledged} acknowledged visits lost "
        f"({acknowledged / elapsed:.0f}/s for {elapsed:.1f} s; {recent} acknowledged in the "
        f"last {interval_s + 0.5} s before the kill)"
    )
    assert 0 <= lost <= recent, (lost, recent)
    # And the ledger holds exactly what Redis holds: both come from the same applied batches.
    ledger = await wait_until(lambda: ledger_total(cluster, page), in_redis, timeout_s=30)
    assert ledger == in_redis


async def test_mysql_down_bounds_the_ledger_backlog_with_an_explicit_503(
    cluster: RunningCluster, scratch_shards: ScratchShards, start_counter: StartCounter
) -> None:
    behind, other = scratch_shards.page_on("a"), scratch_shards.page_on("b")
    instance = start_counter(
        scratch_shards.spec, COUNTER_LEDGER_MAX_BACKLOG_BYTES="300", COUNTER_MAX_PENDING="100"
    )
    ok = 0
    refused: httpx.Response | None = None
    await asyncio.to_thread(cluster.ctl, "stop", "mariadb")
    try:
        async with httpx.AsyncClient(base_url=instance.url) as client:
            deadline = time.monotonic() + 30
            while refused is None and time.monotonic() < deadline:
                response = await client.post(f"/visits/{behind}")
                if response.status_code == 200:
                    ok += 1
                    await asyncio.sleep(0.02)
                else:
                    refused = response
            # The other shard's pages are still taken while the first one pushes back.
            assert (await client.post(f"/visits/{other}")).status_code == 200
            backlog = scratch_shards.client("a").get("counter:ledger:bytes")
    finally:
        await asyncio.to_thread(cluster.ctl, "start", "mariadb")
    assert refused is not None, f"{ok} POSTs accepted with MySQL down, none refused"
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert "ledger" in refused.json()["detail"]
    # Bounded: at most one entry beyond the bound (the script checks before it appends).
    assert int(backlog or 0) < 300 + 200
    assert await wait_until(lambda: mysql_answers(cluster.mysql_dsn), True, timeout_s=60)
    # Once MySQL is back, every accepted visit reaches both stores, exactly once.
    assert await wait_until(
        lambda: _redis_and_ledger(scratch_shards, cluster, behind), (ok, ok), 30
    ) == (ok, ok)
    assert await wait_until(lambda: ledger_total(cluster, other), 1, 30) == 1
