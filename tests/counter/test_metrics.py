"""/metrics of an instance sums every gunicorn worker (prometheus multiprocess mode)."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.counter.conftest import PageOn
from tests.support.cluster import RunningCluster
from tests.support.load import hammer

POST_200 = re.compile(
    r'http_requests_total\{handler="/visits/\{page_id\}",method="POST",status="200"\}'
    r" (\d+(?:\.\d+)?)"
)


def _posts(metrics: str) -> float:
    match = POST_200.search(metrics)
    return float(match[1]) if match else 0.0


async def test_every_workers_requests_are_counted(cluster: RunningCluster, page_on: PageOn) -> None:
    url = cluster.instance_url("counter_1")
    page = page_on(cluster.topo.shard_names[0])
    async with httpx.AsyncClient(base_url=url) as client:
        before = _posts((await client.get("/metrics")).text)
        # Many short connections land on both workers.
        result = await hammer("POST", [f"{url}/visits/{page}"] * 600, concurrency=30)
        assert result.ok == 600
        await asyncio.sleep(1.5)  # a flush interval, for the flush metrics
        metrics = (await client.get("/metrics")).text
    assert _posts(metrics) - before == 600
    for name in (
        "counter_pending_visits",
        "counter_flush_duration_seconds_bucket",
        "counter_flushed_visits_total",
        "http_request_duration_seconds_bucket",
    ):
        assert name in metrics
    # Ids never become label values.
    assert page not in metrics
