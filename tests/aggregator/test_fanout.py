"""The four fan-out endpoints against a scripted upstream over real HTTP: outcomes, call counts,
timing of the smart hedge, deadlines, and no leaked task or connection."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.aggregator.api import AGGREGATOR
from services.aggregator.app import build_app
from services.aggregator.fanout import fan_all
from services.aggregator.settings import AggregatorSettings
from services.aggregator.upstream import Outcome
from services.common.problems import DeadlineExceeded
from tests.support.asgi import serve
from tests.support.polling import wait_until
from tests.support.scripted_upstream import ScriptedUpstream, scripted_upstream

MARGIN_S = 0.15  # what a shared, noisy test machine may add to a deadline


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as running:
        yield running


@pytest.fixture
async def app(upstream: ScriptedUpstream) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = AggregatorSettings(
        ADMIN_TOKEN="aggregator-test-token-0123",
        UPSTREAM_URL=upstream.url,
        MAX_TIMEOUT_MS=5000,
        POOL_SIZE=32,
    )
    application = build_app(settings)
    async with serve(application) as client:
        yield application, client


async def _timed(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get(path, timeout=30)
    return response, time.monotonic() - started


Client = tuple[FastAPI, httpx.AsyncClient]


async def test_all_collects_every_success(app: Client, upstream: ScriptedUpstream) -> None:
    upstream.plan((100, "ok"), (150, "500"), (200, "ok"))
    response, took = await _timed(app[1], "/api/all?timeout=1000")
    assert response.status_code == 200
    assert sorted(b["time"] for b in response.json()) == [100, 200]
    assert len(upstream.starts) == 3
    assert took < 0.2 + MARGIN_S


async def test_all_fails_when_every_call_fails(app: Client, upstream: ScriptedUpstream) -> None:
    upstream.plan((50, "500"), (60, "429"), (70, "invalid"))
    response, _ = await _timed(app[1], "/api/all?timeout=1000")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"


async def test_all_misses_the_deadline_when_one_call_hangs(
    app: Client, upstream: ScriptedUpstream
) -> None:
    upstream.plan((50, "ok"), (60, "ok"), (0, "hang"))
    response, took = await _timed(app[1], "/api/all?timeout=400")
    assert response.status_code == 504
    assert 0.4 <= took < 0.4 + MARGIN_S


async def test_first_ignores_an_earlier_failure(app: Client, upstream: ScriptedUpstream) -> None:
    upstream.plan((30, "500"), (200, "ok"), (300, "ok"))
    response, took = await _timed(app[1], "/api/first?timeout=1000")
    assert response.status_code == 200
    assert response.json() == {"time": 200}
    assert took < 0.2 + MARGIN_S


async def test_first_total_failure_and_deadline(app: Client, upstream: ScriptedUpstream) -> None:
    upstream.plan((30, "500"), (40, "shape"), (50, "invalid"))
    failed, took = await _timed(app[1], "/api/first?timeout=2000")
    assert failed.status_code == 502
    assert took < 0.05 + MARGIN_S
    upstream.plan((0, "hang"), (0, "hang"), (0, "hang"))
    late, took = await _timed(app[1], "/api/first?timeout=300")
    assert late.status_code == 504
    assert 0.3 <= took < 0.3 + MARGIN_S


async def test_within_timeout_returns_what_arrived(app: Client, upstream: ScriptedUpstream) -> None:
    upstream.plan((100, "ok"), (250, "ok"), (0, "hang"))
    response, took = await _timed(app[1], "/api/within-timeout?timeout=500")
    assert response.status_code == 200
    assert response.json() == [{"time": 100}, {"time": 250}]
    assert 0.5 <= took < 0.5 + MARGIN_S
    upstream.plan((0, "hang"), (10, "500"), (0, "hang"))
    nothing, _ = await _timed(app[1], "/api/within-timeout?timeout=200")
    assert nothing.status_code == 200
    assert nothing.json() == []


async def test_smart_fast_first_call_is_the_only_call(
    app: Client, upstream: ScriptedUpstream
) -> None:
    upstream.plan((100, "ok"))
    response, _ = await _timed(app[1], "/api/smart?timeout=1000")
    assert response.json() == {"time": 100}
    # A sleep: what is checked is that nothing happens (no hedge at 300 ms), so no poll can end it.
    await asyncio.sleep(0.4)
    assert len(upstream.starts) == 1


async def test_smart_hedges_at_300ms_and_the_first_call_can_still_win(
    app: Client, upstream: ScriptedUpstream
) -> None:
    upstream.plan((450, "ok"), (400, "ok"), (400, "ok"))
    response, took = await _timed(app[1], "/api/smart?timeout=2000")
    assert response.json() == {"time": 450}  # never cancelled at 300 ms
    assert len(upstream.starts) == 3
    first, *hedges = upstream.starts
    assert all(0.28 <= start - first <= 0.3 + 0.08 for start in hedges)
    assert took < 0.45 + MARGIN_S


async def test_smart_hedges_at_once_after_an_early_failure(
    app: Client, upstream: ScriptedUpstream
) -> None:
    upstream.plan((50, "500"), (100, "ok"), (120, "ok"))
    response, took = await _timed(app[1], "/api/smart?timeout=2000")
    assert response.json() == {"time": 100}
    first, *hedges = upstream.starts
    assert all(0.04 <= start - first <= 0.05 + 0.08 for start in hedges)
    assert took < 0.15 + MARGIN_S


async def test_smart_errors(app: Client, upstream: ScriptedUpstream) -> None:
    upstream.plan((0, "hang"), (0, "hang"), (0, "hang"))
    late, took = await _timed(app[1], "/api/smart?timeout=600")
    assert late.status_code == 504
    assert 0.6 <= took < 0.6 + MARGIN_S
    upstream.reset()
    upstream.plan((20, "500"), (30, "429"), (40, "500"))
    failed, _ = await _timed(app[1], "/api/smart")  # no timeout: bounded by the server maximum
    assert failed.status_code == 502


@pytest.mark.parametrize(
    "path",
    [
        "/api/all",
        "/api/first?timeout=abc",
        "/api/within-timeout?timeout=0",
        "/api/all?timeout=-5",
        "/api/first?timeout=5001",
        "/api/smart?timeout=1.5",
        "/api/smart?timeout=99999999999999999999",
    ],
)
async def test_bad_timeouts_are_422(app: Client, path: str) -> None:
    response = await app[1].get(path)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def _aggregator_tasks() -> list[asyncio.Task[object]]:
    """Every task of this loop but the scripted upstream's own request handlers (the hung ones
    sleep on by design: they are the server's, not the aggregator's)."""
    return [
        t
        for t in asyncio.all_tasks()
        if "RequestHandler" not in t.get_coro().__qualname__  # type: ignore[union-attr]
    ]


async def test_no_task_or_connection_outlives_1000_mixed_requests(
    app: Client, upstream: ScriptedUpstream
) -> None:
    application, client = app
    rng = random.Random(11)
    outcomes = ["ok", "ok", "ok", "500", "429", "invalid", "shape", "hang"]
    for _ in range(4000):
        upstream.plan((rng.randint(0, 60), rng.choice(outcomes)))
    baseline = len(_aggregator_tasks())
    paths = ["/api/all", "/api/first", "/api/within-timeout", "/api/smart"]
    semaphore = asyncio.Semaphore(100)

    async def one(i: int) -> int:
        async with semaphore:
            response = await client.get(f"{paths[i % 4]}?timeout=150", timeout=30)
            return response.status_code

    statuses = await asyncio.gather(*(one(i) for i in range(1000)))
    assert set(statuses) <= {200, 502, 504}
    await wait_until(lambda: len(_aggregator_tasks()) <= baseline, 5, "the fan-outs' tasks ended")
    connector = AGGREGATOR.of_app(application).work.session.connector
    assert connector is not None
    in_use = sum(len(v) for v in connector._acquired_per_host.values())
    idle = sum(len(v) for v in connector._conns.values())
    assert in_use == 0
    assert idle <= 32
    # Hung calls were cancelled: their connections were closed, not kept.
    assert upstream.open_connections <= 32


async def test_all_with_a_call_still_running_at_the_deadline_is_a_deadline_not_a_crash() -> None:
    # The upstream client bounds each call by the deadline, but the loop can wake the policy
    # first: the call is then still pending, and is cancelled rather than finished.
    async def call() -> Outcome:
        await asyncio.sleep(5)
        return Outcome("success", body={"time": 1})

    deadline = asyncio.get_running_loop().time() + 0.05
    with pytest.raises(DeadlineExceeded, match="3 of 3"):
        await fan_all(call, deadline)
