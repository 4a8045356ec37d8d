"""The visit counter of one process: buffered writes, flush loops, cached exact reads.

A POST adds to an in-memory buffer (one per shard, plus the ledger's) and returns; background
loops flush each shard and the ledger on their own schedule and retry with backoff, so a shard or
MySQL being down only delays its own data. In commit mode a POST waits for the batch that carries
its increment, and every request arriving while a batch is in flight shares the next one (group
commit). See buffer.py for why reads are exact and never go down.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass

import aiomysql
from cachetools import LRUCache
from redis.exceptions import RedisError

from services.common.problems import DependencyUnavailable
from services.common.redis_shards import RedisShards
from services.counter import metrics, store
from services.counter.buffer import CachedCount, ShardBuffer
from services.counter.ledger import LedgerBuffer
from services.counter.settings import CounterSettings

log = logging.getLogger(__name__)
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
MYSQL_ERRORS = (aiomysql.Error, OSError, TimeoutError)
# Ledger batch ids are kept this long to recognise a retried batch, then deleted.
LEDGER_ID_RETENTION_S = 24 * 3600


@dataclass(frozen=True)
class Reading:
    visits: int
    served_via: str
    degraded: bool = False


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
        self.ledger = LedgerBuffer()
        self.cache: LRUCache[str, CachedCount] = LRUCache(maxsize=settings.CACHE_SIZE)
        self._locks = {name: asyncio.Lock() for name in [*self.stores, "mysql"]}
        self._wake = {name: asyncio.Event() for name in self.stores}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_warning: dict[str, float] = {}
        self.commit_mode = settings.ACK == "commit"

    # --- requests ---------------------------------------------------------------------------

    def record(self, page_id: str) -> asyncio.Future[None] | None:
        """Count one visit. In commit mode, returns a future done when Redis has it."""
        if sum(buf.outstanding for buf in self.buffers.values()) >= self.settings.MAX_PENDING:
            metrics.REJECTED.inc()
            raise DependencyUnavailable(
                "the visit buffer is full because Redis is not taking writes; try again later"
            )
        shard = self.ring.shard_for(page_id)
        buffer = self.buffers[shard]
        buffer.add(page_id, time.monotonic())
        self.ledger.add(page_id, dt.datetime.now(dt.UTC).date())
        if not self.commit_mode:
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        buffer.pending_waiters.append(waiter)
        self._wake[shard].set()
        return waiter

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
            self._warn(shard, "read failed, answering from memory", exc)
            metrics.READS.labels("degraded").inc()
            base, covered = (entry.base, entry.covered) if entry is not None else (0, 0)
            return Reading(base + buffer.not_in_shard(page_id, covered), "in_memory", True)
        fresh = buffer.from_read(page_id, value, marker, time.monotonic())
        self.cache[page_id] = fresh
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
                        applied = await target.apply(batch)
                except REDIS_ERRORS as exc:
                    metrics.FLUSH_FAILURES.labels(shard).inc()
                    self._warn(shard, "flush failed, will retry", exc)
                    return False
                metrics.FLUSH_DURATION.labels(shard).observe(time.perf_counter() - started)
                if applied:
                    metrics.FLUSHED.labels(shard).inc(batch.visits)
                buffer.confirm(batch, time.monotonic(), self.cache)
            buffer.prune(time.monotonic())
            return True

    async def flush_ledger(self) -> bool:
        if self.mysql is None:
            self.ledger.pending.clear()
            return True
        async with self._locks["mysql"]:
            while (batch := self.ledger.next_batch(self.settings.BATCH_KEYS)) is not None:
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(max(5.0, self.settings.REDIS_TIMEOUT_S)):
                        applied = await store.apply_ledger(self.mysql, batch.batch_id, batch.deltas)
                except MYSQL_ERRORS as exc:
                    metrics.FLUSH_FAILURES.labels("mysql").inc()
                    self._warn("mysql", "ledger flush failed, will retry", exc)
                    return False
                metrics.FLUSH_DURATION.labels("mysql").observe(time.perf_counter() - started)
                if applied:
                    metrics.FLUSHED.labels("mysql").inc(sum(batch.deltas.values()))
                self.ledger.confirm()
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

    async def _ledger_loop(self) -> None:
        interval, retry_max = self.settings.FLUSH_INTERVAL_S, self.settings.RETRY_MAX_S
        failures, stalled_since, last_cleanup = 0, None, time.monotonic()
        while True:
            await asyncio.sleep(
                retry_delay(failures, interval, retry_max) if failures else interval
            )
            ok = await self.flush_ledger()
            failures = 0 if ok else failures + 1
            now = time.monotonic()
            stalled_since = None if ok else (stalled_since or now)
            metrics.FLUSH_LAG.labels("mysql").set(now - stalled_since if stalled_since else 0)
            metrics.LEDGER_PENDING.set(self.ledger.outstanding)
            if ok and self.mysql is not None and now - last_cleanup > 600:
                last_cleanup = now
                with contextlib.suppress(*MYSQL_ERRORS):
                    await store.forget_old_ledger_batches(self.mysql, LEDGER_ID_RETENTION_S)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._shard_loop(name)) for name in self.stores]
        self._tasks.append(asyncio.create_task(self._ledger_loop()))

    async def stop(self) -> None:
        """Stop the loops and flush everything, retrying until SHUTDOWN_FLUSH_S has passed."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = time.monotonic() + self.settings.SHUTDOWN_FLUSH_S
        while True:
            results = await asyncio.gather(
                *(self.flush_shard(name) for name in self.stores), self.flush_ledger()
            )
            if all(results) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        for name, buffer in self.buffers.items():
            if buffer.outstanding:
                metrics.LOST_AT_SHUTDOWN.labels(name).inc(buffer.outstanding)
                log.error(
                    "visits lost at shutdown", extra={"shard": name, "visits": buffer.outstanding}
                )
        if self.ledger.outstanding:
            metrics.LOST_AT_SHUTDOWN.labels("mysql").inc(self.ledger.outstanding)
            log.error("ledger visits lost at shutdown", extra={"visits": self.ledger.outstanding})
        log.info("counter flushed at shutdown")

    def _warn(self, target: str, message: str, exc: BaseException) -> None:
        # One line per target every 10 s: a dead shard must not flood the log at request rate.
        now = time.monotonic()
        if now - self._last_warning.get(target, -1e9) > 10:
            self._last_warning[target] = now
            log.warning(message, extra={"target": target, "error": repr(exc)})
