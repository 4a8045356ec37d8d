"""A service that stalls: the gateway refuses at once what is beyond its bound of requests in
flight per instance, and the service sheds the backlog it finds when it resumes instead of
serving it late.

The gateway holds at most the service's `gateway_conns` (64 for the counter) requests in flight
to one instance (nginx `max_conns`); with every instance at it, it answers 503 with Retry-After
itself. It stamps every request it sends on with the time (X-Request-Start); a worker that takes
a request up after it has waited longer than the burst interval (100 ms) refuses it at once with
503 and Retry-After (services/common/queue_delay.py). Produced for real: both counter instances'
process trees SIGSTOPped while requests reach them through the gateway (the kernel still accepts
and buffers them), then SIGCONTed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common import description
from tests.support.cluster import RunningCluster
from tests.support.faults import programs_stalled
from tests.support.polling import wait_until

pytestmark = pytest.mark.cluster

# The counter's bound per instance, and requests beyond what its instances at that bound hold.
INSTANCE_CONNS = description.service("counter").gateway_conns
BEYOND = 20
# How long the counter stays stopped once its backlog is waiting: far over the 100 ms interval,
# so every buffered request has waited too long when the workers resume. The fault's length,
# not a wait for a condition.
STALL_S = 0.3
GATEWAY_DETAIL = "the service is not available right now"  # nginx/_errors/503.json


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


async def test_a_stalled_service_is_refused_at_the_gateway_and_sheds_its_backlog(
    cluster: RunningCluster,
) -> None:
    before = await asyncio.to_thread(_queue_refusals, cluster)
    instances = cluster.topo.instances_of("counter")
    held = INSTANCE_CONNS * len(instances)
    limits = httpx.Limits(max_connections=held + BEYOND)
    async with httpx.AsyncClient(base_url=cluster.internal, timeout=20, limits=limits) as client:
        assert (await client.get("/visits/queue-shed")).status_code == 200
        async with programs_stalled(cluster, *(f"counter:{i.name}" for i in instances)):
            sent = [
                asyncio.create_task(client.get("/visits/queue-shed")) for _ in range(held + BEYOND)
            ]
            # Those beyond the bound are answered by the gateway while the service is stopped.
            await wait_until(
                lambda: sum(t.done() for t in sent) >= BEYOND,
                timeout_s=10,
                what=f"{BEYOND} requests refused by the gateway while the counter is stopped",
            )
            early = [t.result() for t in sent if t.done()]
            await asyncio.sleep(STALL_S)
        answers = await asyncio.gather(*sent)
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["content-type"] == "application/problem+json"
        assert all(a.json()["detail"] == GATEWAY_DETAIL for a in early)
        by_workers = [a for a in answers if a.json()["detail"] != GATEWAY_DETAIL]
        assert len(by_workers) >= held - BEYOND  # the bound held them: they reached the workers
        after = await asyncio.to_thread(_queue_refusals, cluster)
        assert after - before == len(by_workers)

        # The queue has drained: the next requests are served, and a client cannot forge an old
        # stamp to have its own requests refused (the gateway sets the header).
        async def served() -> bool:
            answer = await client.get("/visits/queue-shed", headers={"X-Request-Start": "t=1"})
            return answer.status_code == 200

        await wait_until(served, timeout_s=10, what="the counter serves again after its backlog")
