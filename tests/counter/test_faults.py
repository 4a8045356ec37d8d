"""Every dependency of the counter refused (killed) and stalled (SIGSTOP), each public endpoint's
answer and how long it took; then every accepted visit is in Redis and the ledger exactly once.

Private instances on scratch shards (batch and commit mode, read cache off so every GET meets the
shard); MySQL is the cluster's. The measured table is printed (pytest -s) and kept in
docs/counter.md."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import httpx
import pytest

from tests.counter.conftest import (
    CounterInstance,
    ScratchShards,
    StartCounter,
    ledger_total,
    wait_until,
)
from tests.support.cluster import RunningCluster
from tests.support.faults import MYSQL, programs_refused, programs_stalled, stalled

COMMON = {"COUNTER_CACHE_TTL_S": "0", "COUNTER_LEDGER_CLAIM_IDLE_S": "2"}
FAST_S = 0.5  # a request that does not wait for the faulty dependency
REDIS_TIMEOUT_S = 0.5  # the default COUNTER_REDIS_TIMEOUT_S
COMMIT_TIMEOUT_S = 2.0  # the default COUNTER_COMMIT_TIMEOUT_S
DAILY_TIMEOUT_S = 2.0  # the default COUNTER_DAILY_TIMEOUT_S


@dataclass
class Pair:
    batch: CounterInstance
    commit: CounterInstance


@pytest.fixture
def pair(scratch_shards: ScratchShards, start_counter: StartCounter) -> Pair:
    batch = start_counter(scratch_shards.spec, COUNTER_MAX_PENDING="50", **COMMON)
    commit = start_counter(scratch_shards.spec, COUNTER_ACK="commit", **COMMON)
    return Pair(batch, commit)


class Probe:
    """Timed requests; the accepted POSTs per page, to check the counts afterwards."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.accepted: Counter[str] = Counter()
        self.rows: list[str] = []

    async def call(
        self, instance: CounterInstance, method: str, path: str, label: str
    ) -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(base_url=instance.url, timeout=30) as client:
            started = time.perf_counter()
            response = await client.request(method, path)
            took = time.perf_counter() - started
        if method == "POST" and response.status_code in {200, 202}:
            self.accepted[path.rsplit("/", 1)[1]] += 1
        body = response.json()
        shown = body.get("served_via") or body.get("status")
        if body.get("degraded"):
            shown = f"{shown}, degraded"
        self.rows.append(
            f"| {self.fault} | {label} | {response.status_code} {shown} | {took:.3f} s |"
        )
        return response, took

    def print(self) -> None:
        print("\n" + "\n".join(self.rows))


async def _settled(cluster: RunningCluster, shards: ScratchShards, accepted: Counter[str]) -> None:
    for page, expected in accepted.items():
        assert await wait_until(partial(shards.count, page), expected, 30) == expected, page
        in_ledger = await wait_until(partial(ledger_total, cluster, page), expected, 30)
        assert in_ledger == expected, page


@asynccontextmanager
async def _shard_fault(shards: ScratchShards, name: str, fault: str) -> AsyncIterator[None]:
    """A scratch shard is this test's own process, not a supervisord program."""
    if fault == "stalled":
        with stalled(shards.pid(name)):
            yield
        return
    shards.kill(name)
    try:
        yield
    finally:
        shards.start(name)


@pytest.mark.parametrize("fault", ["killed", "stalled"])
async def test_a_shard_refused_or_stalled(
    cluster: RunningCluster, scratch_shards: ScratchShards, pair: Pair, fault: str
) -> None:
    probe = Probe(f"shard a {fault}")
    down, up = scratch_shards.page_on("a"), scratch_shards.page_on("b")
    for page in (down, up):
        await probe.call(pair.batch, "POST", f"/visits/{page}", "warm-up")
    probe.rows.clear()
    async with _shard_fault(scratch_shards, "a", fault):
        response, took = await probe.call(
            pair.batch, "POST", f"/visits/{down}", "POST its page, batch"
        )
        assert response.status_code == 200
        assert took < FAST_S
        response, took = await probe.call(
            pair.commit, "POST", f"/visits/{down}", "POST its page, commit"
        )
        assert response.status_code == 202
        assert COMMIT_TIMEOUT_S - 0.1 < took < COMMIT_TIMEOUT_S + 2
        for instance, mode in ((pair.batch, "batch"), (pair.commit, "commit")):
            response, took = await probe.call(
                instance, "POST", f"/visits/{up}", f"POST other shard's page, {mode}"
            )
            assert response.status_code == 200
            assert took < 1.5
        response, took = await probe.call(pair.batch, "GET", f"/visits/{down}", "GET its page")
        assert response.status_code == 200
        assert response.json()["degraded"] is True
        # refused: at once; stalled: after the Redis timeout
        assert took < (FAST_S if fault == "killed" else REDIS_TIMEOUT_S + 1.5)
        response, took = await probe.call(
            pair.batch, "GET", f"/visits/{up}", "GET other shard's page"
        )
        assert response.json()["served_via"] == "b"
        response, took = await probe.call(
            pair.batch, "GET", f"/visits/{down}/daily", "GET its page /daily"
        )
        assert response.status_code == 200
        assert took < FAST_S
        # The shard's buffer fills up to its own cap; then its pages, and only its, get a 503.
        async with httpx.AsyncClient(base_url=pair.batch.url) as client:
            for _ in range(60):
                answer = await client.post(f"/visits/{down}")
                if answer.status_code != 200:
                    break
                probe.accepted[down] += 1
        response, took = await probe.call(
            pair.batch, "POST", f"/visits/{down}", "POST its page, buffer full"
        )
        assert response.status_code == 503
        assert "shard a" in response.json()["detail"]
        assert int(response.headers["retry-after"]) >= 1
        assert took < FAST_S
        response, _ = await probe.call(
            pair.batch, "POST", f"/visits/{up}", "POST other shard's page, a's buffer full"
        )
        assert response.status_code == 200
    probe.print()
    await _settled(cluster, scratch_shards, probe.accepted)


def _mysql_fault(cluster: RunningCluster, fault: str) -> AbstractAsyncContextManager[None]:
    if fault == "killed":
        return programs_refused(cluster, MYSQL, kill=True)
    return programs_stalled(cluster, MYSQL)


@pytest.mark.parametrize("fault", ["killed", "stalled"])
async def test_mysql_refused_or_stalled(
    cluster: RunningCluster, scratch_shards: ScratchShards, pair: Pair, fault: str
) -> None:
    probe = Probe(f"MySQL {fault}")
    page = scratch_shards.page_on("a")
    await probe.call(pair.batch, "POST", f"/visits/{page}", "warm-up")
    await probe.call(pair.batch, "GET", f"/visits/{page}/daily", "warm-up")
    probe.rows.clear()
    async with _mysql_fault(cluster, fault):
        for instance, mode in ((pair.batch, "batch"), (pair.commit, "commit")):
            response, took = await probe.call(instance, "POST", f"/visits/{page}", f"POST, {mode}")
            assert response.status_code == 200
            assert took < FAST_S
        response, took = await probe.call(pair.batch, "GET", f"/visits/{page}", "GET")
        assert response.status_code == 200
        assert took < FAST_S
        response, took = await probe.call(pair.batch, "GET", f"/visits/{page}/daily", "GET /daily")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        # refused: at once; stalled: after COUNTER_DAILY_TIMEOUT_S
        assert took < (1.5 if fault == "killed" else DAILY_TIMEOUT_S + 1.5)
    probe.print()
    await _settled(cluster, scratch_shards, probe.accepted)
