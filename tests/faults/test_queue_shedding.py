"""A service that stalls sheds the backlog it finds when it resumes, instead of serving it late.

The gateway stamps every request with the time it sent it on (X-Request-Start); a worker that
takes a request up after it has waited longer than the burst interval (50 ms) refuses it at
once with 503 and Retry-After (services/common/queue_delay.py). Produced for real: both counter
instances' process trees SIGSTOPped while requests reach them through the gateway (the kernel
still accepts and buffers them), then SIGCONTed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import RunningCluster
from tests.support.faults import programs_stalled
from tests.support.polling import wait_until

pytestmark = pytest.mark.cluster

BACKLOG = 40
# How long the counter stays stopped with the backlog waiting: far over the 50 ms interval, so
# every buffered request has waited too long when the workers resume. The fault's length, not a
# wait for a condition.
STALL_S = 0.5


def _queue_refusals(cluster: RunningCluster) -> float:
    total = 0.0
    for instance in cluster.topo.instances_of("counter"):
        text = httpx.get(f"{cluster.instance_url(instance.name)}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            total += sum(
                s.value
                for s in family.samples
                if s.name == "quartet_admission_refused_total" and s.labels["reason"] == "queue"
            )
    return total


async def test_a_stalled_service_refuses_its_backlog_at_once_when_it_resumes(
    cluster: RunningCluster,
) -> None:
    before = await asyncio.to_thread(_queue_refusals, cluster)
    limits = httpx.Limits(max_connections=BACKLOG)
    async with httpx.AsyncClient(base_url=cluster.internal, timeout=20, limits=limits) as client:
        assert (await client.get("/visits/queue-shed")).status_code == 200
        programs = [f"counter:{i.name}" for i in cluster.topo.instances_of("counter")]
        async with programs_stalled(cluster, *programs):
            backlog = [
                asyncio.create_task(client.get("/visits/queue-shed")) for _ in range(BACKLOG)
            ]
            await asyncio.sleep(STALL_S)
        answers = await asyncio.gather(*backlog)
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["content-type"] == "application/problem+json"
        after = await asyncio.to_thread(_queue_refusals, cluster)
        assert after - before == BACKLOG

        # The queue has drained: the next requests are served, and a client cannot forge an old
        # stamp to have its own requests refused (the gateway sets the header).
        async def served() -> bool:
            answer = await client.get("/visits/queue-shed", headers={"X-Request-Start": "t=1"})
            return answer.status_code == 200

        await wait_until(served, timeout_s=10, what="the counter serves again after its backlog")
