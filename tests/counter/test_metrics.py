"""/metrics of an instance sums every gunicorn worker (prometheus multiprocess mode)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict

from tests.counter.conftest import PageOn
from tests.support.cluster import RunningCluster
from tests.support.load import hammer
from tests.support.polling import wait_until

POST_200 = re.compile(
    r'http_requests_total\{handler="/visits/\{page_id\}",method="POST",status="200"\}'
    r" (\d+(?:\.\d+)?)"
)
POST_200_LABELS = {"handler": "/visits/{page_id}", "method": "POST", "status": "200"}


def _posts(metrics: str) -> float:
    match = POST_200.search(metrics)
    return float(match[1]) if match else 0.0


def _flushed(metrics: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("counter_flushed_visits_total")
    )


def _posts_by_worker(directory: Path) -> dict[str, float]:
    """POSTs answered 200 per worker, read from each worker's own file (counter_<pid>.db), which
    outlives the worker: what /metrics sums."""
    served: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        for entry in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            _, name, labels, _ = json.loads(entry[0])
            if name == "http_requests_total" and labels == POST_200_LABELS:
                served[path.stem] = served.get(path.stem, 0.0) + float(entry[1])
    return served


async def test_every_workers_requests_are_counted(cluster: RunningCluster, page_on: PageOn) -> None:
    url = cluster.instance_url("counter_1")
    page = page_on(cluster.topo.shard_names[0])
    files = cluster.topo.state / "metrics" / "counter_1"
    async with httpx.AsyncClient(base_url=url) as client:
        before = (await client.get("/metrics")).text
        by_worker_before = _posts_by_worker(files)
        # Many short connections land on both workers.
        result = await hammer("POST", [f"{url}/visits/{page}"] * 600, concurrency=30)
        assert result.ok == 600

        async def flushed() -> bool:
            return _flushed((await client.get("/metrics")).text) >= _flushed(before) + 600

        await wait_until(flushed, timeout_s=10, what="the 600 visits flushed")
        metrics = (await client.get("/metrics")).text
    by_worker = _posts_by_worker(files)
    served = {w: n - by_worker_before.get(w, 0.0) for w, n in by_worker.items()}
    assert sum(served.values()) == 600
    # Both workers took some of the load, and /metrics is their sum, not one worker's view.
    assert len([w for w, n in served.items() if n > 0]) >= 2, served
    assert _posts(metrics) - _posts(before) == 600
    for name in (
        "counter_pending_visits",
        "counter_flush_duration_seconds_bucket",
        "counter_flushed_visits_total",
        "http_request_duration_seconds_bucket",
    ):
        assert name in metrics
    # Ids never become label values.
    assert page not in metrics
