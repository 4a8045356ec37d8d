"""The visit counter of one process: buffered writes, flush loops, cached exact reads.

A POST adds to an in-memory buffer of its page's shard and returns; a background loop per shard
flushes it (totals and ledger rows in one atomic script, store.py) and retries with backoff, so a
shard being down only delays, and only ever refuses, its own pages. A feeder loop per shard moves
the shard's ledger stream into MySQL (ledger.py); MySQL down only delays the ledger until the
stream's bound is reached, then the shard refuses batches and its buffer fills up to its cap. In
commit mode a POST waits for the batch that carries its increment, and every request arriving
while a batch is in flight shares the next one (group commit). See buffer.py for why reads are
exact and never go down.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
import uuid
from dataclasses import dataclass

import aiomysql
from cachetools import LRUCache

from services.common.problems import DependencyUnavailable
from services.common.redis_shards import RedisShards
from services.common.store_errors import MYSQL_ERRORS, REDIS_ERRORS
from services.common.throttled_log import ThrottledWarnings
from services.counter import metrics, store
from services.counter.buffer import CachedCount, ShardBuffer
from services.counter.ledger import LedgerFeeder, MysqlFailed
from services.counter.settings import CounterSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    visits: int
    served_via: str
    degraded: bool = False


@dataclass(frozen=True)
class Daily:
    """A page's visits per UTC day, oldest first, every day of the span (0 when none)."""

    days: list[tuple[dt.date, int]]

    @property
    def total(self) -> int:
        return sum(visits for _, visits in self.days)


def retry_delay(failures: int, interval_s: float, max_s: float) -> float:
    """Exponential from 0.1 s, never above max_s nor above the normal interval."""
    return float(min(interval_s, max_s, 0.1 * 2 ** (failures - 1)))


class VisitCounter:
    def __init__(
        self, settings: CounterSettings, shards: RedisShards, mysql: aiomysql.Pool | None
    ) -> None:
        self.settings = settings
        self.ring = shards.ring
        self.mysql = mysql
        # Markers in Redis are per writer: a restarted process starts a new sequence.
        writer_id = uuid.uuid4().hex
        self.stores = {
            name: store.ShardStore(name, client, writer_id)
            for name, client in shards.clients.items()
        }
        # Confirmed batches are kept until no read that started before them can still be running.
        retention_s = 2 * settings.REDIS_TIMEOUT_S + 1
        self.buffers = {name: ShardBuffer(retention_s=retention_s) for name in self.stores}
        # Without MySQL there is no ledger: the flush script then appends nothing to the streams.
        self.ledger_bound = settings.LEDGER_MAX_BACKLOG_BYTES if mysql is not None else 0
        metrics.LEDGER_BACKLOG_LIMIT_BYTES.set(settings.LEDGER_MAX_BACKLOG_BYTES)
        self.feeders = (
            {name: LedgerFeeder(settings, target, mysql) for name, target in self.stores.items()}
            if mysql is not None
            else {}
        )
        # why each shard's last flush failed: the reason a full buffer's 503 names
        self.flush_trouble: dict[str, str] = {}
        self.cache: LRUCache[str, CachedCount] = LRUCache(maxsize=settings.CACHE_SIZE)
        self._locks = {name: asyncio.Lock() for name in self.stores}
        self._wake = {name: asyncio.Event() for name in self.stores}
        self._tasks: list[asyncio.Task[None]] = []
        # Keyed by shard (or "mysql"): a dead shard must not flood the log at request rate.
        self._warnings = ThrottledWarnings(log)
        self.commit_mode = settings.ACK == "commit"

    # --- requests ---------------------------------------------------------------------------

    def record(self, page_id: str) -> asyncio.Future[None] | None:
        """Count one visit. In commit mode, returns a future done when Redis has it."""
        shard = self.ring.shard_for(page_id)
        buffer = self.buffers[shard]
        # Per shard: a shard that does not take writes fills only its own buffer.
        if buffer.outstanding >= self.settings.MAX_PENDING:
            metrics.REJECTED.inc()
            trouble = self.flush_trouble.get(
                shard, f"Redis shard {shard} is not taking writes fast enough"
            )
            raise DependencyUnavailable(
                f"the visit buffer of shard {shard} is full: {trouble}; try again later",
                headers={"Retry-After": str(math.ceil(self.settings.RETRY_MAX_S))},
            )
        buffer.add(page_id, dt.datetime.now(dt.UTC).date(), time.monotonic())
        if not self.commit_mode:
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        buffer.pending_waiters.append(waiter)
        self._wake[shard].set()
        return waiter

    async def count(self, page_id: str) -> bool:
        """Count one visit: True once it is recorded, False when commit mode's wait ran out.

        False is not a loss: the increment stays queued and is applied once Redis answers
        (a 202, never a 5xx, since a client that resends on 5xx would count the visit twice)."""
        waiter = self.record(page_id)
        if waiter is None:
            return True
        try:
            async with asyncio.timeout(self.settings.COMMIT_TIMEOUT_S):
                await asyncio.shield(waiter)
        except TimeoutError:
            return False
        return True

    async def daily(self, page_id: str, days: int) -> Daily:
        """The last `days` UTC days from the MySQL ledger, today included; 503 without it."""
        if self.mysql is None:
            raise DependencyUnavailable("the daily ledger needs MYSQL_DSN")
        today = dt.datetime.now(dt.UTC).date()
        since = today - dt.timedelta(days=days - 1)
        try:
            async with asyncio.timeout(self.settings.DAILY_TIMEOUT_S):
                found = await store.daily_visits(self.mysql, page_id, since)
        except MYSQL_ERRORS as exc:
            raise DependencyUnavailable("the daily ledger (MySQL) is not answering") from exc
        span = (since + dt.timedelta(days=i) for i in range(days))
        return Daily([(day, found.get(day, 0)) for day in span])

    async def read(self, page_id: str) -> Reading:
        shard = self.ring.shard_for(page_id)
        buffer = self.buffers[shard]
        entry = self.cache.get(page_id)
        if entry is not None and time.monotonic() - entry.fetched_at < self.settings.CACHE_TTL_S:
            metrics.READS.labels("in_memory").inc()
            return Reading(entry.base + buffer.not_in_shard(page_id, entry.covered), "in_memory")
        try:
            async with asyncio.timeout(self.settings.REDIS_TIMEOUT_S):
                value, marker = await self.stores[shard].read(page_id)
        except REDIS_ERRORS as exc:
            self._warnings.warn(shard, "read failed, answering from memory", error=repr(exc))
            metrics.READS.labels("degraded").inc()
            base, covered = (entry.base, entry.covered) if entry is not None else (0, 0)
            return Reading(base + buffer.not_in_shard(page_id, covered), "in_memory", True)
        fresh = buffer.from_read(page_id, value, marker, time.monotonic())
        self.cache[page_id] = fresh
        metrics.READ_CACHE_ENTRIES.set(len(self.cache))
        metrics.READS.labels("shard").inc()
        return Reading(fresh.base + buffer.not_in_shard(page_id, fresh.covered), shard)

    # --- flushing ---------------------------------------------------------------------------

    async def flush_shard(self, shard: str) -> bool:
        """Send everything buffered for the shard; False when Redis failed (kept for later)."""
        buffer, target = self.buffers[shard], self.stores[shard]
        async with self._locks[shard]:
            while (batch := buffer.next_batch(self.settings.BATCH_KEYS)) is not None:
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(self.settings.REDIS_TIMEOUT_S):
                        applied = await target.apply(batch, self.ledger_bound)
                except store.LedgerBacklogFull as exc:
                    metrics.FLUSH_FAILURES.labels(shard).inc()
                    self.flush_trouble[shard] = (
                        f"the daily ledger (MySQL) is behind and shard {shard}'s ledger backlog "
                        f"holds its maximum ({self.ledger_bound} bytes)"
                    )
                    self._warnings.warn(
                        shard, "ledger backlog full, batch refused, will retry", error=repr(exc)
                    )
                    return False
                except REDIS_ERRORS as exc:
                    metrics.FLUSH_FAILURES.labels(shard).inc()
                    self.flush_trouble[shard] = f"Redis shard {shard} is not taking writes"
                    self._warnings.warn(shard, "flush failed, will retry", error=repr(exc))
                    return False
                metrics.FLUSH_DURATION.labels(shard).observe(time.perf_counter() - started)
                if applied:
                    metrics.FLUSHED.labels(shard).inc(batch.visits)
                buffer.confirm(batch, time.monotonic(), self.cache)
            self.flush_trouble.pop(shard, None)
            buffer.prune(time.monotonic())
            return True

    async def feed_ledger(self, shard: str) -> bool:
        """Move the shard's ledger stream into MySQL; False when MySQL or the shard failed."""
        feeder = self.feeders[shard]
        # No deadline around the whole: a catch-up after a long outage takes as long as it takes;
        # each Redis command has REDIS_TIMEOUT_S and each MySQL transaction LEDGER_TIMEOUT_S.
        try:
            await feeder.feed()
            await feeder.report_backlog()
        except MysqlFailed as exc:
            self._warnings.warn(
                "mysql", "ledger write failed, will retry", error=repr(exc.__cause__ or exc)
            )
            return False
        except REDIS_ERRORS as exc:
            self._warnings.warn(
                f"{shard}:ledger", "ledger stream read failed, will retry", error=repr(exc)
            )
            return False
        with contextlib.suppress(*MYSQL_ERRORS, *REDIS_ERRORS):
            await feeder.housekeeping()
        return True

    async def _shard_loop(self, shard: str) -> None:
        interval, retry_max = self.settings.FLUSH_INTERVAL_S, self.settings.RETRY_MAX_S
        wake = self._wake[shard]
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(retry_delay(failures, interval, retry_max))
            elif self.commit_mode:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await wake.wait()
                wake.clear()
            else:
                await asyncio.sleep(interval)
            failures = 0 if await self.flush_shard(shard) else failures + 1
            buffer = self.buffers[shard]
            stalled = buffer.stalled_since
            metrics.FLUSH_LAG.labels(shard).set(time.monotonic() - stalled if stalled else 0)
            metrics.PENDING.set(sum(b.outstanding for b in self.buffers.values()))
            metrics.BUFFERED_ROWS.set(sum(len(b.pending) for b in self.buffers.values()))

    async def _ledger_loop(self, shard: str) -> None:
        interval, retry_max = self.settings.FLUSH_INTERVAL_S, self.settings.RETRY_MAX_S
        feeder = self.feeders[shard]
        failures = 0
        while True:
            await asyncio.sleep(
                retry_delay(failures, interval, retry_max) if failures else interval
            )
            try:
                ok = await self.feed_ledger(shard)
            except Exception:
                # An entry this code cannot read must not end the loop (and the shard's ledger
                # with it) silently: logged, and retried like any failure.
                log.exception("ledger feeder failed", extra={"shard": shard})
                ok = False
            failures = 0 if ok else failures + 1
            now = time.monotonic()
            state = feeder.state
            state.stalled_since = None if ok else (state.stalled_since or now)
            stalls = [f.state.stalled_since for f in self.feeders.values()]
            oldest = min((t for t in stalls if t is not None), default=None)
            metrics.FLUSH_LAG.labels("mysql").set(now - oldest if oldest else 0)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._shard_loop(name)) for name in self.stores]
        self._tasks += [asyncio.create_task(self._ledger_loop(name)) for name in self.feeders]

    async def stop(self) -> None:
        """Stop the loops and flush everything, retrying until SHUTDOWN_FLUSH_S has passed."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = time.monotonic() + self.settings.SHUTDOWN_FLUSH_S
        while True:
            results = await asyncio.gather(*(self.flush_shard(name) for name in self.stores))
            if all(results) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        # Not needed for correctness (the streams outlive this process and other processes, or
        # the next start, feed them), but a lone instance shut down cleanly leaves MySQL current.
        if self.feeders and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - time.monotonic()):
                    await asyncio.gather(*(self.feed_ledger(name) for name in self.feeders))
        for name, buffer in self.buffers.items():
            if buffer.outstanding:
                metrics.LOST_AT_SHUTDOWN.labels(name).inc(buffer.outstanding)
                log.error(
                    "visits lost at shutdown", extra={"shard": name, "visits": buffer.outstanding}
                )
        log.info("counter flushed at shutdown")
