"""Failures under load, produced for real: an instance stopped with SIGTERM mid-load, a Redis
shard killed with SIGKILL and kept down, MySQL unaffected. Every POST answered 200 is counted
exactly once in the end."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx

from tests.counter.conftest import PageOn, ledger_total
from tests.support.cluster import RunningCluster
from tests.support.load import LoadResult, hammer
from tests.support.polling import wait_until

MANY = 200_000  # more URLs than the load can send before the test stops it
STEP = 500  # answered POSTs that make "the load has run on" (about half a second of it)


class PostLoad:
    """POSTs for one page through the gateway, 50 at a time, until finish() is awaited."""

    def __init__(self, cluster: RunningCluster, page: str) -> None:
        self._stop = asyncio.Event()
        self.progress = LoadResult()
        urls = [f"{cluster.internal}/visits/{page}"] * MANY
        self._task = asyncio.create_task(
            hammer("POST", urls, concurrency=50, stop=self._stop, result=self.progress)
        )

    async def runs_on(self, answered: int = STEP) -> None:
        """Until `answered` more POSTs have been answered 200: the load goes on (rather than
        sleeping a guess at how long that takes on a loaded machine)."""
        target = self.progress.ok + answered
        await wait_until(lambda: self.progress.ok >= target, 30, f"{target} POSTs answered 200")

    async def finish(self) -> LoadResult:
        self._stop.set()
        return await self._task


def _problems_logged(cluster: RunningCluster) -> str:
    """The counters' warnings and errors, to say why a count is off when one is."""
    lines = []
    for log in sorted((cluster.topo.state / "logs").glob("counter_*.log")):
        lines += [
            f"{log.name}: {line}"
            for line in log.read_text().splitlines()
            if '"level":"WARNING"' in line or '"level":"ERROR"' in line
        ]
    return "\n".join(lines[-40:])


async def _settled(cluster: RunningCluster, shard: str, page: str, expected: int) -> int:
    """The page's count in Redis once every buffer has drained (polls up to 15 s)."""
    client = cluster.redis(shard)
    deadline = time.monotonic() + 15
    value = -1
    while time.monotonic() < deadline:
        value = int(client.get(f"visits:{page}") or 0)
        if value == expected:
            break
        await asyncio.sleep(0.25)
    return value


async def test_sigterm_mid_load_loses_and_duplicates_nothing(
    cluster: RunningCluster, page_on: PageOn
) -> None:
    shard = cluster.topo.shard_names[0]
    page = page_on(shard)
    load = PostLoad(cluster, page)
    await load.runs_on()
    # supervisorctl stop = SIGTERM to gunicorn: workers drain, flush, exit.
    await asyncio.to_thread(cluster.ctl, "stop", "counter:counter_1")
    await load.runs_on()  # against the remaining instance
    result = await load.finish()
    await asyncio.to_thread(cluster.ctl, "start", "counter:counter_1")
    await asyncio.to_thread(cluster.wait_ready, "counter_1")
    assert result.ok > 1000, result
    assert await _settled(cluster, shard, page, result.ok) == result.ok, _problems_logged(cluster)
    deadline = time.monotonic() + 10
    while ledger_total(cluster, page) != result.ok and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    assert ledger_total(cluster, page) == result.ok, _problems_logged(cluster)


async def test_sigterm_to_one_worker_mid_load_is_exact(
    cluster: RunningCluster, page_on: PageOn
) -> None:
    shard = cluster.topo.shard_names[0]
    page = page_on(shard)
    master = int(cluster.ctl("pid", "counter:counter_2").strip())
    workers = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    assert len(workers) == 2
    load = PostLoad(cluster, page)
    await load.runs_on()
    os.kill(workers[0], signal.SIGTERM)  # gunicorn replaces it; it flushes before exiting
    children = Path(f"/proc/{master}/task/{master}/children")

    def replaced() -> bool:
        now = [int(p) for p in children.read_text().split()]
        return len(now) == 2 and workers[0] not in now

    await wait_until(replaced, 30, f"gunicorn replacing worker {workers[0]}")
    await load.runs_on()  # with the new worker
    result = await load.finish()
    assert result.ok > 1000, result
    assert await _settled(cluster, shard, page, result.ok) == result.ok, _problems_logged(cluster)


async def test_shard_killed_during_load_then_back_is_exact(
    cluster: RunningCluster, page_on: PageOn
) -> None:
    shard = cluster.topo.shard_names[1]
    page = page_on(shard)
    load = PostLoad(cluster, page)
    await load.runs_on()
    pid = int(cluster.ctl("pid", shard).strip())
    os.kill(pid, signal.SIGKILL)
    # Keep it down (supervisord would restart it at once) to observe the degraded mode.
    await asyncio.to_thread(cluster.ctl, "stop", shard)
    await load.runs_on()  # with the shard down
    during: dict[str, object] = {}
    async with httpx.AsyncClient() as client:

        async def degraded() -> bool:
            during.update((await client.get(f"{cluster.gateway}/visits/{page}")).json())
            return during.get("degraded") is True

        await wait_until(degraded, 10, f"a read of {page} saying its shard is down")
    await asyncio.to_thread(cluster.ctl, "start", shard)
    await load.runs_on()  # with the shard back
    result = await load.finish()

    assert during["served_via"] == "in_memory"
    assert during["degraded"] is True
    # A refusal by admission control (the machine's load, not the shard) counts nothing, as the
    # settled count below checks; anything else but a 200 is a failure of the degraded mode.
    assert result.only_served_or_refused, result
    assert result.ok > 1000
    assert await _settled(cluster, shard, page, result.ok) == result.ok, _problems_logged(cluster)
