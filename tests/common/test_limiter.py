from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from redis.asyncio import Redis
from starlette.types import Message, Receive, Scope, Send

from services.common.app import create_app
from services.common.limiter import InFlightLimiter, InFlightLimitMiddleware, Slot
from services.common.settings import ServiceSettings
from tests.support.asgi import serve
from tests.support.faults import listener_pid, stalled
from tests.support.processes import free_port, redis_server

TOKEN = "limiter-test-token-0123456789"


async def test_one_worker_never_admits_more_than_the_cap(scratch_redis: int) -> None:
    redis = Redis(port=scratch_redis)
    # A generous bound: a loaded machine may not open the connection within the default 50 ms
    # (the bound is tested below).
    limiter = InFlightLimiter("captest", redis, cap=5, lease_s=30, timeout_s=5)
    holding = 0
    peak = 0
    granted = 0

    async def one() -> None:
        nonlocal holding, peak, granted
        slot = await limiter.acquire()
        if slot is None:
            return
        assert slot is Slot.HELD
        granted += 1
        holding += 1
        peak = max(peak, holding)
        await asyncio.sleep(0.01)
        holding -= 1
        limiter.release(slot)

    for _ in range(5):
        await asyncio.gather(*(one() for _ in range(100)))
    assert peak == 5
    assert granted >= 25
    assert await redis.zcard(limiter.key) <= 5
    await limiter.aclose()
    assert await redis.zcard(limiter.key) == 0
    await redis.aclose()


async def test_an_idle_worker_gives_its_block_back(scratch_redis: int) -> None:
    redis = Redis(port=scratch_redis)
    limiter = InFlightLimiter("idletest", redis, cap=100, lease_s=30, timeout_s=5)
    slot = await limiter.acquire()
    assert slot is Slot.HELD
    limiter.release(slot)
    assert await redis.zcard(limiter.key) > 1  # the spare stays while the worker is busy
    # Two renewals without a request (a second or so each), far less than the 30 s lease.
    held = await redis.zcard(limiter.key)
    deadline = time.monotonic() + 5
    while held and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        held = await redis.zcard(limiter.key)
    assert held == 0
    await redis.aclose()


async def test_the_server_shutting_down_returns_the_block(scratch_redis: int) -> None:
    redis = Redis(port=scratch_redis)
    limiter = InFlightLimiter("shutdowntest", redis, cap=100, lease_s=30, timeout_s=5)
    slot = await limiter.acquire()
    assert slot is Slot.HELD
    limiter.release(slot)
    assert await redis.zcard(limiter.key) > 0
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] != "lifespan.shutdown":
            seen.append(message["type"])
        # By the app's own teardown (which closes the pools) the block is back.
        seen.append(f"shutdown, {await redis.zcard(limiter.key)} held")

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        pass

    await InFlightLimitMiddleware(app, limiter=limiter)({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan.startup", "shutdown, 0 held"]
    await redis.aclose()


@asynccontextmanager
async def _app(redis_port: int, cap: int, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    router = APIRouter()

    @router.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.2)
        return {"ok": "yes"}

    @router.get("/fast")
    async def fast() -> dict[str, str]:
        return {"ok": "yes"}

    config = ServiceSettings(
        ADMIN_TOKEN=TOKEN,
        REDIS_SHARDS={"only": f"redis://127.0.0.1:{redis_port}"},
        INFLIGHT_LIMIT=cap,
        **settings,  # type: ignore[arg-type]
    )
    async with serve(create_app("limitapp", config, routers=[router])) as client:
        yield client


async def test_over_the_cap_answers_429_with_retry_after(scratch_redis: int) -> None:
    async with _app(scratch_redis, cap=3) as client:
        responses = await asyncio.gather(*(client.get("/slow") for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 3
    assert statuses.count(429) == 7
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429


async def test_health_endpoints_are_not_capped(scratch_redis: int) -> None:
    redis = Redis(port=scratch_redis)
    # Another replica holds every slot.
    await redis.zadd("inflight:limitapp", {"other": time.time() * 1000 + 60_000})
    async with _app(scratch_redis, cap=1) as client:
        assert (await client.get("/slow")).status_code == 429
        assert (await client.get("/healthz")).status_code == 200
    await redis.aclose()


async def test_redis_unreachable_fails_open() -> None:
    async with _app(free_port(), cap=1) as client:
        responses = await asyncio.gather(*(client.get("/slow") for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]


@pytest.mark.cluster  # a redis-server of its own, stalled
async def test_a_stalled_limiter_shard_never_makes_a_request_late(tmp_path: Path) -> None:
    # The shard's own timeout is 5 s: before the limiter bounded its call, every request waited
    # that long. Now the requests the block cannot take wait INFLIGHT_TIMEOUT_S at most, sharing
    # one call, and the rest skip the limiter.
    with redis_server(tmp_path / "redis") as port:
        async with _app(port, cap=100, REDIS_TIMEOUT_S=5, INFLIGHT_TIMEOUT_S=0.05) as client:
            assert (await client.get("/fast")).status_code == 200  # connections warm, a block
            errors_before = _limiter_errors((await client.get("/metrics")).text)
            with stalled(listener_pid(port)):
                started = time.perf_counter()
                # More at once than the block holds (cap 100: a step of 3 spare).
                first = await asyncio.gather(*(client.get("/slow") for _ in range(10)))
                first_s = time.perf_counter() - started
                started = time.perf_counter()
                later = await client.get("/fast")
                later_s = time.perf_counter() - started
                metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in first] == [200] * 10
    assert later.status_code == 200
    # Margins for a loaded machine; what fails is the 5 s wait (/slow itself takes 0.2 s).
    assert first_s < 1.2, first_s
    assert later_s < 0.5, later_s
    assert _limiter_errors(metrics) - errors_before == 1


def _limiter_errors(metrics: str) -> float:
    line = next(
        x for x in metrics.splitlines() if x.startswith("limitapp_inflight_limiter_errors_total")
    )
    return float(line.split()[-1])


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cap"):
        InFlightLimiter("bad", Redis(), cap=0, lease_s=1)
