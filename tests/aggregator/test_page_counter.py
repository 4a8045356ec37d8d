"""The page's visits part against a counter of the test's own over real HTTP: one exchange with a
counter that honours `Prefer: return=representation`, POST then GET with one from before it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from services.aggregator.app import build_app
from services.aggregator.settings import AggregatorSettings
from tests.support.asgi import serve
from tests.support.cluster import RunningCluster
from tests.support.processes import free_port


@dataclass
class FakeCounter:
    """Counts POSTs; answers them the new way (representation) or the old way, as told."""

    honours_prefer: bool
    fail_reads: bool = False
    visits: int = 0
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        prefer = request.headers.get("Prefer")
        self.seen.append((request.method, prefer))
        count = {"visits": self.visits, "served_via": "fake"}
        if request.method == "GET":
            return web.json_response(count, status=503 if self.fail_reads else 200)
        self.visits += 1
        count["visits"] = self.visits
        if self.honours_prefer and prefer == "return=representation":
            return web.json_response(count, headers={"Preference-Applied": "return=representation"})
        return web.json_response({"status": "success", "message": "Visit recorded"})


@asynccontextmanager
async def _counter(
    honours_prefer: bool, *, fail_reads: bool = False
) -> AsyncIterator[tuple[FakeCounter, str]]:
    counter = FakeCounter(honours_prefer, fail_reads)
    runner = web.ServerRunner(web.Server(counter.handle))  # type: ignore[arg-type]
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield counter, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("honours_prefer", [True, False])
async def test_visits_in_one_exchange_or_two_with_an_older_counter(honours_prefer: bool) -> None:
    async with _counter(honours_prefer) as (counter, url):
        settings = AggregatorSettings(
            ADMIN_TOKEN="aggregator-test-token-0123", COUNTER_URL=url, POOL_SIZE=4
        )
        async with serve(build_app(settings)) as client:
            answers = [await client.get("/api/page/home?timeout=2000") for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert [a.json()["visits"] for a in answers] == [
        {"visits": k, "served_via": "fake"} for k in (1, 2, 3)
    ]
    assert all(a.json()["errors"] == {} for a in answers)
    # The counter's Preference-Applied is the aggregator's business, not its caller's.
    assert all("preference-applied" not in a.headers for a in answers)
    posts = [("POST", "return=representation")]
    expected = posts if honours_prefer else [*posts, ("GET", None)]
    assert counter.seen == expected * 3


async def test_an_older_counter_failing_the_read_is_a_missing_part() -> None:
    async with _counter(honours_prefer=False, fail_reads=True) as (counter, url):
        settings = AggregatorSettings(
            ADMIN_TOKEN="aggregator-test-token-0123", COUNTER_URL=url, POOL_SIZE=4
        )
        async with serve(build_app(settings)) as client:
            answer = await client.get("/api/page/home?timeout=2000")
    # The visit was recorded, but the part is its count: missing, and the page with it.
    assert counter.visits == 1
    assert answer.status_code == 502
    assert answer.json()["errors"] == {"visits": "unavailable"}


async def test_through_the_gateway_the_count_includes_this_visit(cluster: RunningCluster) -> None:
    # Fresh pages, so the true count is 1: the count is read by the process that recorded the
    # visit, whichever of the counter instances and workers nginx sent the POST to.
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        answers = [await client.get(f"/api/page/fresh-{run}-{i}?timeout=1500") for i in range(8)]
    assert [a.json()["visits"]["visits"] for a in answers] == [1] * 8
