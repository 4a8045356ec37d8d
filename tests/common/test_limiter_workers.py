"""Several limiters (one per simulated worker, each with its own connections) against one real
redis-server: the cap across them, fairness, a killed worker's block, and what a request costs."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from services.common.limiter import InFlightLimiter, Slot

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def workers(
    port: int, service: str, count: int, *, cap: int, lease_s: float = 30
) -> AsyncIterator[list[InFlightLimiter]]:
    # A generous timeout: a loaded machine may take longer than the default 50 ms to open the
    # connections (the bound itself is tested in test_limiter.py).
    clients = [Redis(port=port) for _ in range(count)]
    limiters = [
        InFlightLimiter(service, client, cap=cap, lease_s=lease_s, timeout_s=5)
        for client in clients
    ]
    try:
        yield limiters
    finally:
        for limiter in limiters:
            await limiter.aclose()
        for client in clients:
            await client.aclose()


async def test_the_cap_holds_across_workers_under_concurrent_load(scratch_redis: int) -> None:
    cap = 12
    redis = Redis(port=scratch_redis)
    in_use = 0
    peak = 0
    held_peak = 0
    admitted = [0, 0, 0, 0]
    running = True

    async def watch() -> None:
        nonlocal held_peak
        while running:
            held_peak = max(held_peak, await redis.zcard("inflight:capload"))
            await asyncio.sleep(0.002)

    async def client(worker: int, limiter: InFlightLimiter) -> None:
        nonlocal in_use, peak
        # Long enough for every holder to see the contention (at its renewal, within a second).
        while time.monotonic() < until:
            slot = await limiter.acquire()
            if slot is None:
                await asyncio.sleep(0.002)
                continue
            assert slot is Slot.HELD
            admitted[worker] += 1
            in_use += 1
            peak = max(peak, in_use)
            await asyncio.sleep(random.uniform(0.001, 0.01))
            in_use -= 1
            limiter.release(slot)

    async with workers(scratch_redis, "capload", 4, cap=cap) as limiters:
        until = time.monotonic() + 3
        watcher = asyncio.create_task(watch())
        # 15 clients per worker: 60 wanting 12 slots, so every worker is refused at times.
        await asyncio.gather(
            *(client(w, limiter) for w, limiter in enumerate(limiters) for _ in range(15))
        )
        running = False
        await watcher
    assert peak <= cap, peak
    assert held_peak <= cap, held_peak
    assert peak >= cap - 4, peak  # the load did reach the cap (less the others' stray spare)
    # Nobody starved: each worker had a fair part of the admissions (an equal share would be a
    # quarter; a worker kept out until the others saw the contention gets far less than a tenth).
    assert min(admitted) > sum(admitted) / 10, admitted
    assert await redis.zcard("inflight:capload") == 0  # every block given back at close
    await redis.aclose()


async def test_a_worker_without_a_block_gets_the_slots_others_free(scratch_redis: int) -> None:
    async with workers(scratch_redis, "fairness", 2, cap=6, lease_s=30) as (first, second):
        taken = [await first.acquire() for _ in range(6)]
        assert taken == [Slot.HELD] * 6
        assert await second.acquire() is None
        for _ in taken:
            first.release(Slot.HELD)
        # The first worker gives its freed slots back (at once, or at its next renewal within
        # a second): the second gets the whole cap long before the 30 s lease would end.
        deadline = time.monotonic() + 5
        mine: list[Slot] = []
        while len(mine) < 6 and time.monotonic() < deadline:
            slot = await second.acquire()
            if slot is None:
                await asyncio.sleep(0.02)
            else:
                mine.append(slot)
        assert [slot is Slot.HELD for slot in mine] == [True] * 6
        assert await second.acquire() is None  # and still no more than the cap


_HOLDER = """
import asyncio, sys
from redis.asyncio import Redis
from services.common.limiter import InFlightLimiter, Slot

async def main() -> None:
    redis = Redis(port=int(sys.argv[1]))
    limiter = InFlightLimiter("killed", redis, cap=4, lease_s=1.0, timeout_s=5)
    slots = [await limiter.acquire() for _ in range(4)]
    print("holding" if slots == [Slot.HELD] * 4 else f"not held: {slots}", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_workers_block_is_reclaimed_after_its_lease(scratch_redis: int) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, str(scratch_redis), cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"holding"
        # Renewed while alive: well past its 1 s lease the block is still held.
        await asyncio.sleep(1.5)
        async with workers(scratch_redis, "killed", 1, cap=4) as (limiter,):
            assert await limiter.acquire() is None
            holder.kill()
            await holder.wait()
            killed = time.monotonic()
            got = None
            while got is None and time.monotonic() - killed < 10:
                await asyncio.sleep(0.05)
                got = await limiter.acquire()
            reclaimed_s = time.monotonic() - killed
            assert got is Slot.HELD
            # The last renewal was at most a third of the lease before the kill: not early.
            assert reclaimed_s >= 0.6, reclaimed_s
            slots = [got] + [await limiter.acquire() for _ in range(3)]
            assert all(slot is Slot.HELD for slot in slots)  # the whole block came back
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def test_under_load_a_round_trip_serves_many_requests(scratch_redis: int) -> None:
    redis = Redis(port=scratch_redis)
    await redis.config_resetstat()
    admitted = 0

    async def client(limiter: InFlightLimiter) -> None:
        nonlocal admitted
        for _ in range(50):
            slot = await limiter.acquire()
            assert slot is Slot.HELD  # 40 clients, cap 200: never refused
            admitted += 1
            await asyncio.sleep(random.uniform(0, 0.004))
            limiter.release(slot)

    async with workers(scratch_redis, "cost", 2, cap=200) as limiters:
        await asyncio.gather(*(client(limiter) for limiter in limiters for _ in range(20)))
    stats = await redis.info("commandstats")
    calls = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))
    await redis.aclose()
    assert admitted == 2_000
    assert calls > 0
    # Today two per request; a block amortises them (the bound is far below what is measured).
    assert admitted / calls > 10, (admitted, calls)
