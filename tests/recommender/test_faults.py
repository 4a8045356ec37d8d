"""The recommender's fault matrix: each Redis shard and MySQL, refused (stopped) and stalled
(SIGSTOP); per endpoint the answer and how long it took, against the table in
docs/recommender.md. No fault may hold an answer past the documented bound, and the service is
whole again once the fault ends (no pooled connection left holding a cancelled query's reply)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from tests.recommender.faults import Timed, refused, stalled, timed, wait_until
from tests.recommender.test_api import add_events, new_user
from tests.recommender.test_events import channel_shard, the_other_shard, user_on
from tests.support.cluster import RunningCluster

# The documented bound of any answer under any single fault: a request waits at most 2 s for
# MySQL and 0.5 s (REDIS_TIMEOUT_S) per Redis step, two steps at most on a path that also
# waits for MySQL; what a shared, noisy machine may add.
BOUND_S = 3.0
MARGIN_S = 0.5

# fault -> endpoint -> the statuses allowed (several where which worker answers decides).
OK = {
    "recommend cold": {200},
    "recommend warm": {200},
    "batch": {200},
    "event": {202},
    "invalidate": {200},
}
EXPECTED: dict[str, dict[str, set[int]]] = {
    "user's shard refused": {**OK, "invalidate": {503}},
    "user's shard stalled": {**OK, "invalidate": {503}},
    "channel's shard refused": {**OK, "invalidate": {503}},
    "channel's shard stalled": {**OK, "invalidate": {503}},
    "mysql refused": {**OK, "recommend cold": {503}, "event": {503}},
    "mysql stalled": {**OK, "recommend cold": {503}, "event": {503}},
}
# Of the batch's two users (one cold, one warm), how many get an answer.
BATCH_ANSWERED = {"mysql refused": 1, "mysql stalled": 1}

Fault = Callable[[RunningCluster], AbstractAsyncContextManager[None]]


def _user_shard(cluster: RunningCluster) -> str:
    return the_other_shard(cluster, channel_shard(cluster))


FAULTS: dict[str, Fault] = {
    "user's shard refused": lambda c: refused(c, _user_shard(c), kill=True),
    "user's shard stalled": lambda c: stalled(c, _user_shard(c)),
    "channel's shard refused": lambda c: refused(c, channel_shard(c), kill=True),
    "channel's shard stalled": lambda c: stalled(c, channel_shard(c)),
    "mysql refused": lambda c: refused(c, "mariadb"),
    "mysql stalled": lambda c: stalled(c, "mariadb"),
}
TABLE: dict[str, dict[str, Timed]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    yield
    endpoints = list(OK)
    print("\n| fault | " + " | ".join(endpoints) + " |")
    print("|---|" + "---|" * len(endpoints))
    for fault, row in TABLE.items():
        cells = [f"{row[e].status} {row[e].took_s * 1000:.0f} ms" for e in endpoints if e in row]
        print(f"| {fault} | " + " | ".join(cells) + " |")


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault(cluster: RunningCluster, fault: str) -> None:
    shard = _user_shard(cluster)
    cold, cold_in_batch, warm, writer, invalidated = (user_on(cluster, shard) for _ in range(5))
    for user in (cold, cold_in_batch, warm):
        add_events(cluster, user, [("search", "qa-faults", 1)])
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    event = {"type": "search", "category": "qa-faults"}
    async with httpx.AsyncClient(base_url=cluster.instance_url("recommender_1"), timeout=30) as c:
        assert (await c.get(f"/recommend/{warm}")).status_code == 200
        async with FAULTS[fault](cluster):
            results = await asyncio.gather(
                timed(c.get(f"/recommend/{cold}")),
                timed(c.get(f"/recommend/{warm}")),
                timed(c.get("/batch-recommend", params={"user_ids": f"{cold_in_batch},{warm}"})),
                timed(c.post(f"/users/{writer}/events", json=event, headers=key)),
                timed(c.post(f"/invalidate-cache/{invalidated}", headers=admin)),
            )
        row = TABLE[fault] = dict(zip(OK, results, strict=True))
        for endpoint, allowed in EXPECTED[fault].items():
            got = row[endpoint]
            assert got.status in allowed, (endpoint, got.status, got.response.text)
            assert got.took_s < BOUND_S + MARGIN_S, (endpoint, got.took_s)
            if got.status >= 400:
                assert got.response.headers["content-type"] == "application/problem+json"
        assert row["batch"].response.json()["successful"] == BATCH_ANSWERED.get(fault, 2)

        # Whole again by itself (MySQL may take a few seconds to accept connections): every
        # user's own events, and the event retried under its key recorded once.
        async def recovered() -> bool:
            answer = await c.get(f"/recommend/{cold}")
            return answer.status_code == 200

        await wait_until(recovered, 60, "the recommender answers again")
        retry = await c.post(f"/users/{writer}/events", json=event, headers=key)
        assert retry.status_code == 202
        for user in (cold, cold_in_batch, writer):
            body = (await c.get(f"/recommend/{user}")).json()
            assert body["metadata"] == {"search_count": 1, "purchase_count": 0}, user
    fresh = new_user()
    add_events(cluster, fresh, [("purchase", "qa-faults", 2)])
    async with httpx.AsyncClient(base_url=cluster.instance_url("recommender_2")) as other:
        body = (await other.get(f"/recommend/{fresh}")).json()
    assert body["metadata"] == {"search_count": 0, "purchase_count": 1}
