"""The buffer's arithmetic against a model Redis, with flushes and reads interleaved in every way
the event loop allows: a read's snapshot may be taken before or after a batch is applied and
processed before or after its confirmation; replies may be lost; batches are retried."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from cachetools import LRUCache
from hypothesis import given, settings
from hypothesis import strategies as st

from services.counter.buffer import Batch, CachedCount, ShardBuffer

PAGES = ["a", "b", "c"]
DAY = dt.date(2024, 2, 29)


@dataclass
class ModelRedis:
    values: Counter[str] = field(default_factory=Counter)
    marker: int = 0

    def apply(self, batch: Batch) -> bool:
        if batch.seq <= self.marker:
            return False
        self.values.update(batch.deltas)
        self.marker = batch.seq
        return True


@dataclass
class World:
    redis: ModelRedis = field(default_factory=ModelRedis)
    buffer: ShardBuffer = field(default_factory=lambda: ShardBuffer(retention_s=1e9))
    cache: LRUCache[str, CachedCount] = field(default_factory=lambda: LRUCache(maxsize=100))
    truth: Counter[str] = field(default_factory=Counter)
    in_flight: Batch | None = None
    applied_in_flight: bool = False
    reads: list[tuple[str, int, int]] = field(default_factory=list)
    reported: dict[str, int] = field(default_factory=dict)
    now: float = 0.0

    def report(self, page: str, visits: int) -> None:
        assert visits == self.truth[page], (page, visits, self.truth[page])
        assert visits >= self.reported.get(page, 0)
        self.reported[page] = visits

    def step(self, op: str, page: str) -> None:
        self.now += 1
        buffer = self.buffer
        if op == "add":
            buffer.add(page, DAY, self.now)
            self.truth[page] += 1
        elif op == "send" and self.in_flight is None:
            self.in_flight = buffer.next_batch(max_keys=2)
            self.applied_in_flight = False
        elif op == "apply" and self.in_flight is not None and not self.applied_in_flight:
            self.redis.apply(self.in_flight)
            self.applied_in_flight = True
        elif op == "ack" and self.in_flight is not None and self.applied_in_flight:
            buffer.confirm(self.in_flight, self.now, self.cache)
            self.in_flight = None
        elif op == "lose" and self.in_flight is not None:
            self.in_flight = None  # the reply never came: the batch stays unconfirmed
        elif op == "read_start":
            self.reads.append((page, self.redis.values[page], self.redis.marker))
        elif op == "read_end" and self.reads:
            read_page, value, marker = self.reads.pop(0)
            entry = buffer.from_read(read_page, value, marker, self.now)
            self.cache[read_page] = entry
            self.report(read_page, entry.base + buffer.not_in_shard(read_page, entry.covered))
        elif op == "cached" and page in self.cache:
            entry = self.cache[page]
            self.report(page, entry.base + buffer.not_in_shard(page, entry.covered))


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["add", "send", "apply", "ack", "lose", "read_start", "read_end", "cached"]
        ),
        st.sampled_from(PAGES),
    ),
    min_size=30,
    max_size=300,
)


@settings(max_examples=400, deadline=None)
@given(OPS)
def test_every_read_is_exact_and_never_goes_down(ops: list[tuple[str, str]]) -> None:
    world = World()
    for op, page in ops:
        world.step(op, page)
    # Drain: every retry eventually gets through; Redis then holds exactly what was added.
    while world.buffer.outstanding:
        world.in_flight = None
        world.step("send", "a")
        world.step("apply", "a")
        world.step("ack", "a")
    assert +world.redis.values == +world.truth


def test_a_retried_batch_keeps_its_sequence_and_content() -> None:
    buffer = ShardBuffer(retention_s=10)
    buffer.add("a", DAY, 0)
    first = buffer.next_batch(100)
    buffer.add("a", DAY, 1)
    again = buffer.next_batch(100)
    assert first is again
    assert again is not None
    assert again.deltas == {"a": 1}
    buffer.confirm(again, 2, LRUCache(maxsize=1))
    following = buffer.next_batch(100)
    assert following is not None
    assert following.seq == again.seq + 1
    assert following.deltas == {"a": 1}


def test_batches_are_cut_to_the_key_limit_in_arrival_order() -> None:
    buffer = ShardBuffer(retention_s=10)
    for page in "abcde":
        buffer.add(page, DAY, 0)
    cache: LRUCache[str, CachedCount] = LRUCache(maxsize=1)
    cuts = []
    while (batch := buffer.next_batch(2)) is not None:
        cuts.append(list(batch.deltas))
        buffer.confirm(batch, 0, cache)
    assert cuts == [["a", "b"], ["c", "d"], ["e"]]
    assert buffer.outstanding == 0
    assert buffer.stalled_since is None


def test_confirmed_batches_are_pruned_after_the_retention() -> None:
    buffer = ShardBuffer(retention_s=5)
    buffer.add("a", DAY, 0)
    batch = buffer.next_batch(10)
    assert batch is not None
    buffer.confirm(batch, 10, LRUCache(maxsize=1))
    buffer.prune(14)
    assert list(buffer.batches) == [batch]
    buffer.prune(16)
    assert not buffer.batches


def test_a_batch_carries_the_ledger_rows_by_day_and_their_sum_per_page() -> None:
    buffer = ShardBuffer(retention_s=10)
    next_day = DAY + dt.timedelta(days=1)
    buffer.add("a", DAY, 0)
    buffer.add("a", next_day, 0, count=2)
    buffer.add("b", next_day, 0)
    assert buffer.not_in_shard("a", 0) == 3
    batch = buffer.next_batch(2)
    assert batch is not None
    assert batch.rows == {("a", DAY): 1, ("a", next_day): 2}
    assert batch.deltas == {"a": 3}
    # Cut by ledger rows; the per-page sums that reads use follow the cut.
    assert buffer.pending_pages == {"b": 1}
    assert buffer.not_in_shard("a", 0) == 3  # unconfirmed batch
    assert buffer.not_in_shard("b", 0) == 1
