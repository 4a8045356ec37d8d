"""COUNTER_ACK=commit: a POST is answered only once Redis holds its increment, and concurrent
POSTs share batches (group commit)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.counter.conftest import PageOn
from tests.support.cluster import RunningCluster
from tests.support.load import hammer
from tests.support.processes import free_port


@pytest.fixture
def commit_instance(cluster: RunningCluster, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "REDIS_SHARDS": cluster.topo.redis_shards,
        "MYSQL_DSN": cluster.mysql_dsn,
        "ADMIN_TOKEN": cluster.admin_token,
        "COUNTER_ACK": "commit",
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    proc = subprocess.Popen(
        [
            gunicorn,
            "-c",
            "python:services.common.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
            "services.counter.app:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise AssertionError("the commit-mode instance exited")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


async def test_a_post_is_answered_after_redis_has_it(
    cluster: RunningCluster, page_on: PageOn, commit_instance: str
) -> None:
    shard = cluster.topo.shard_names[0]
    page = page_on(shard)
    owner = cluster.redis(shard)
    async with httpx.AsyncClient(base_url=commit_instance) as client:
        for expected in range(1, 6):
            assert (await client.post(f"/visits/{page}")).status_code == 200
            assert int(owner.get(f"visits:{page}") or 0) == expected


async def test_concurrent_posts_share_batches(
    cluster: RunningCluster, page_on: PageOn, commit_instance: str
) -> None:
    shard = cluster.topo.shard_names[1]
    page = page_on(shard)
    result = await hammer("POST", [f"{commit_instance}/visits/{page}"] * 2000, concurrency=200)
    assert result.ok == 2000
    assert int(cluster.redis(shard).get(f"visits:{page}") or 0) == 2000
    async with httpx.AsyncClient(base_url=commit_instance) as client:
        metrics = (await client.get("/metrics")).text
    match = re.search(
        rf'counter_flush_duration_seconds_count\{{target="{shard}"\}} (\d+(?:\.\d+)?)', metrics
    )
    assert match is not None
    batches = float(match[1])
    # Group commit: far fewer Redis round trips than requests.
    assert batches < 2000 / 4, batches
