"""The per-shard bound of the visit buffer, without I/O: nothing here reaches Redis."""

from __future__ import annotations

import itertools

import pytest

from services.common.problems import DependencyUnavailable
from services.common.redis_shards import RedisShards
from services.counter.counting import VisitCounter
from services.counter.settings import CounterSettings

# Nothing listens there; the clients connect lazily and these tests never flush.
SHARDS = {"a": "redis://127.0.0.1:9/0", "b": "redis://127.0.0.1:9/1"}


def _counter(max_pending: int) -> VisitCounter:
    settings = CounterSettings(
        ADMIN_TOKEN="t" * 16, REDIS_SHARDS=SHARDS, MAX_PENDING=max_pending, ENVIRONMENT="test"
    )
    return VisitCounter(settings, RedisShards(SHARDS, pool_size=1, timeout_s=0.1), None)


def _page_on(counter: VisitCounter, shard: str) -> str:
    return next(
        p for p in (f"p{i}" for i in itertools.count()) if counter.ring.shard_for(p) == shard
    )


def test_a_full_shard_buffer_refuses_only_its_own_pages() -> None:
    counter = _counter(max_pending=3)
    stuck, healthy = _page_on(counter, "a"), _page_on(counter, "b")
    for _ in range(3):
        counter.record(stuck)
    with pytest.raises(DependencyUnavailable) as refused:
        counter.record(stuck)
    # The other shard's pages are still taken, up to their own bound.
    for _ in range(3):
        counter.record(healthy)
    assert counter.buffers["b"].outstanding == 3
    assert "shard a" in refused.value.detail
    assert int(refused.value.headers["Retry-After"]) >= 1
