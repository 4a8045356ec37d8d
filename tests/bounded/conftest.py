"""Shared pieces of the bounded-state tests: floods through the gateway's internal listener,
private instances with small bounds, and reading what the stores and processes hold."""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support import refusals
from tests.support.cluster import RunningCluster
from tests.support.instances import Instance, start_instance


def metric(base_url: str, name: str) -> float:
    """The sum of a metric's samples on one instance (0 when absent)."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    found = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    return sum(float(v) for v in found)


def keys_matching(cluster: RunningCluster, pattern: str) -> list[tuple[str, redis.Redis]]:
    """Every key matching the pattern on every shard (SCAN, never KEYS)."""
    found = []
    for shard in cluster.topo.shard_names:
        client = cluster.redis(shard)
        found += [(k.decode(), client) for k in client.scan_iter(match=pattern, count=1000)]
    return found


Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def get(path: str, **params: str) -> Request:
    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(path, params=params)

    return send


def post(path: str) -> Request:
    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(path)

    return send


def _refused(response: httpx.Response) -> bool:
    return refusals.is_refusal(response.status_code, response.headers, response.content)


async def flood(
    requests: Iterable[Request],
    base_url: str,
    *,
    concurrency: int = 16,
    deadline_s: float = 120,
) -> list[int]:
    """Send every request with `concurrency` at once; their statuses. Fails past the deadline.

    A request a worker's admission control refused (503, Retry-After, its detail) is sent again
    after Retry-After, up to refusals.RETRIES times, as a well-behaved client does (these tests are
    about memory, not about overload)."""
    queue = collections.deque(requests)
    statuses: list[int] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            send = queue.popleft()
            response = await send(client)
            for _ in range(refusals.RETRIES):
                if not _refused(response):
                    break
                await asyncio.sleep(refusals.retry_after_s(response.headers))
                response = await send(client)
            statuses.append(response.status_code)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        async with asyncio.timeout(deadline_s):
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses


StartService = Callable[..., str]


@pytest.fixture
def start_service(cluster: RunningCluster, tmp_path: Path) -> Iterator[StartService]:
    """start_service("recommender", RECOMMENDER_L1_SIZE="200", ...): a private instance (one
    worker) on the cluster's shards and MySQL; its URL. Stopped with SIGTERM afterwards."""
    started: list[Instance] = []

    def start(service: str, **env: str) -> str:
        instance = start_instance(cluster, tmp_path, service, cluster.topo.redis_shards, **env)
        started.append(instance)
        return instance.url

    yield start
    for instance in started:
        instance.stop()
