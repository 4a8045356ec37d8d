"""The increments one process holds for one Redis shard, and the arithmetic that keeps reads exact.

Increments go through three states:

    pending  ->  batch sent (unconfirmed)  ->  batch confirmed (kept a few seconds, then dropped)

A batch carries a sequence number. Redis applies it with a script that records the highest
sequence applied for this process (the marker) in the same atomic step, and skips a batch whose
sequence is not above the marker. So a batch whose reply was lost is simply sent again: it is
applied once or recognised, never counted twice, never lost.

The same script appends the batch's ledger rows, (page, UTC day of the visit) -> count, to the
shard's ledger stream (ledger.py feeds MySQL from it), so a batch reaches the totals and the ledger
together or not at all. Pending increments are therefore kept by (page, day); reads only need the
per-page sum.

A read of a shard returns the page's value V and the marker A in one atomic step. Then

    visits = V + (confirmed batches with seq > A) + (unconfirmed batches with seq > A) + pending

counts every increment of this process exactly once, whatever flushes raced the read. The read
cache keeps `base = V + confirmed batches with seq > A` and `covered = max(A, last confirmed)`;
each later confirmation adds its deltas to the cached bases it is not covered by. A count this
process reports therefore never goes down, across flushes or cache refreshes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

from cachetools import LRUCache

K = TypeVar("K")
# (page, UTC day of the visit): one row of the daily ledger
LedgerKey = tuple[str, dt.date]


def take_up_to(pending: dict[K, int], limit: int) -> tuple[dict[K, int], dict[K, int]]:
    """Split off the oldest `limit` entries: (taken, rest). The whole dict when it fits."""
    if len(pending) <= limit:
        return pending, {}
    taken = dict(islice(pending.items(), limit))
    for key in taken:
        del pending[key]
    return taken, pending


def per_page(rows: dict[LedgerKey, int]) -> dict[str, int]:
    deltas: dict[str, int] = {}
    for (page_id, _), count in rows.items():
        deltas[page_id] = deltas.get(page_id, 0) + count
    return deltas


@dataclass
class Batch:
    seq: int
    rows: dict[LedgerKey, int]
    deltas: dict[str, int] = field(init=False)
    # The ledger's idempotency key: fixed at creation, so every retry of the batch carries it.
    ledger_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # commit mode: requests waiting for this batch to be confirmed
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    confirmed_at: float | None = None

    def __post_init__(self) -> None:
        self.deltas = per_page(self.rows)

    @property
    def visits(self) -> int:
        return sum(self.deltas.values())


@dataclass
class CachedCount:
    base: int
    covered: int
    fetched_at: float


class ShardBuffer:
    def __init__(self, *, retention_s: float) -> None:
        self.pending: dict[LedgerKey, int] = {}
        # the same increments summed per page, for reads
        self.pending_pages: dict[str, int] = {}
        self.pending_waiters: list[asyncio.Future[None]] = []
        self.batches: deque[Batch] = deque()
        self.last_confirmed = 0
        self._next_seq = 1
        self.retention_s = retention_s
        # increments not yet confirmed by Redis (pending + unconfirmed batches)
        self.outstanding = 0
        # since when this shard has had increments waiting without a confirmation: the flush lag
        self.stalled_since: float | None = None

    def add(self, page_id: str, day: dt.date, now: float, count: int = 1) -> None:
        key = (page_id, day)
        self.pending[key] = self.pending.get(key, 0) + count
        self.pending_pages[page_id] = self.pending_pages.get(page_id, 0) + count
        self.outstanding += count
        if self.stalled_since is None:
            self.stalled_since = now

    def unconfirmed_batch(self) -> Batch | None:
        for batch in self.batches:
            if batch.confirmed_at is None:
                return batch
        return None

    def next_batch(self, max_keys: int) -> Batch | None:
        """The batch to send now: the unconfirmed one again, else a new one cut from pending."""
        waiting = self.unconfirmed_batch()
        if waiting is not None:
            return waiting
        if not self.pending:
            return None
        rows, self.pending = take_up_to(self.pending, max_keys)
        batch = Batch(self._next_seq, rows)
        for page_id, count in batch.deltas.items():
            left = self.pending_pages[page_id] - count
            if left:
                self.pending_pages[page_id] = left
            else:
                del self.pending_pages[page_id]
        if not self.pending:
            # Waiters belong to the first batch that holds everything buffered before them.
            batch.waiters, self.pending_waiters = self.pending_waiters, []
        self._next_seq += 1
        self.batches.append(batch)
        return batch

    def confirm(self, batch: Batch, now: float, cache: LRUCache[str, CachedCount]) -> None:
        batch.confirmed_at = now
        self.last_confirmed = batch.seq
        self.outstanding -= batch.visits
        for page_id, delta in batch.deltas.items():
            entry = cache.get(page_id)
            if entry is not None and entry.covered < batch.seq:
                entry.base += delta
                entry.covered = batch.seq
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)
        batch.waiters = []
        self.stalled_since = None if self.outstanding == 0 else now

    def prune(self, now: float) -> None:
        """Drop confirmed batches no in-flight read can still need."""
        while (
            self.batches
            and self.batches[0].confirmed_at is not None
            and now - self.batches[0].confirmed_at > self.retention_s
        ):
            self.batches.popleft()

    def not_in_shard(self, page_id: str, covered: int) -> int:
        """This process's increments of the page that a read covering `covered` does not hold."""
        extra = self.pending_pages.get(page_id, 0)
        for batch in self.batches:
            if batch.confirmed_at is None and batch.seq > covered:
                extra += batch.deltas.get(page_id, 0)
        return extra

    def from_read(self, page_id: str, value: int, marker: int, now: float) -> CachedCount:
        """The cache entry for a fresh shard read (value V, marker A)."""
        base = value
        for batch in self.batches:
            if batch.confirmed_at is not None and batch.seq > marker:
                base += batch.deltas.get(page_id, 0)
        return CachedCount(base, max(marker, self.last_confirmed), now)
