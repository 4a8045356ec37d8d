"""The ledger feeder: from every shard's ledger stream into the MySQL daily ledger.

A shard's flush script appends each batch's (page, day) rows to the shard's stream in the same
atomic step that adds the batch to the totals (store.py), so whatever Redis acknowledged is also
queued for the ledger, in Redis, durable like the totals. Every counter process runs one feeder
per shard; they share the stream through a consumer group:

- an entry is applied to MySQL in one transaction that also records its batch id
  (`counter_ledger_batches`), so an entry applied twice (a lost COMMIT reply, an entry claimed
  from a consumer that was slow rather than dead) is recognised and skipped;
- then it is acknowledged and deleted (one script: the stream only holds what MySQL lacks);
- entries a killed process had read but not finished are claimed by any other (or the restarted)
  process once idle for LEDGER_CLAIM_IDLE_S: that is the catch-up.

MySQL down only stops the feeders: the streams grow, up to COUNTER_LEDGER_MAX_BACKLOG_BYTES per
shard, beyond which the flush script refuses batches (backpressure, see counting.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import aiomysql
from redis.exceptions import ResponseError

from services.common.store_errors import MYSQL_ERRORS
from services.counter import metrics, store
from services.counter.settings import CounterSettings

log = logging.getLogger(__name__)
# Ledger batch ids are kept this long to recognise a repeated entry, then deleted.
LEDGER_ID_RETENTION_S = 24 * 3600
CLEANUP_EVERY_S = 600
# A consumer with nothing pending and idle this long belongs to a process that exited.
CONSUMER_IDLE_MS = 3600 * 1000


class MysqlFailed(Exception):
    """MySQL did not take an entry: keep it, retry later."""


@dataclass
class FeederState:
    # since when this shard's feeder has failed to apply an entry it holds (the mysql flush lag)
    stalled_since: float | None = None
    last_cleanup: float = field(default_factory=time.monotonic)


class LedgerFeeder:
    def __init__(self, settings: CounterSettings, target: store.ShardStore, pool: aiomysql.Pool):
        self.settings = settings
        self.target = target
        self.pool = pool
        self.state = FeederState()
        self._group_ready = False

    async def feed(self) -> int:
        """Apply entries until the stream has none left for us; the number applied.

        Raises MysqlFailed, or a Redis error, with what was done so far kept."""
        done = 0
        while True:
            entries = await self._entries()
            if not entries:
                return done
            for entry in entries:
                if entry.rows is not None:
                    await self._apply(entry)
                    done += 1
                await self.target.ledger_done(entry.entry_id)

    async def _entries(self) -> list[store.LedgerEntry]:
        claim_idle_ms = int(self.settings.LEDGER_CLAIM_IDLE_S * 1000)
        if not self._group_ready:
            await self.target.create_group()
            self._group_ready = True
        try:
            return await self.target.ledger_entries(self.settings.LEDGER_READ_COUNT, claim_idle_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The shard lost its data (restarted without it, or flushed): start a new group.
            self._group_ready = False
            return []

    async def _apply(self, entry: store.LedgerEntry) -> None:
        assert entry.rows is not None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.LEDGER_TIMEOUT_S):
                applied = await store.apply_ledger(self.pool, entry.batch_id, entry.rows)
        except MYSQL_ERRORS as exc:
            metrics.FLUSH_FAILURES.labels("mysql").inc()
            raise MysqlFailed from exc
        metrics.FLUSH_DURATION.labels("mysql").observe(time.perf_counter() - started)
        if applied:
            metrics.FLUSHED.labels("mysql").inc(sum(entry.rows.values()))

    async def report_backlog(self) -> None:
        entries, held = await self.target.ledger_backlog()
        metrics.LEDGER_BACKLOG_ENTRIES.labels(self.target.name).set(entries)
        metrics.LEDGER_BACKLOG_BYTES.labels(self.target.name).set(held)

    async def housekeeping(self) -> None:
        """Every CLEANUP_EVERY_S: forget old batch ids, consumers of exited processes and daily
        ledger rows past COUNTER_LEDGER_RETENTION_DAYS (10,000 rows a pass per feeder)."""
        now = time.monotonic()
        if now - self.state.last_cleanup < CLEANUP_EVERY_S:
            return
        self.state.last_cleanup = now
        await store.forget_old_ledger_batches(self.pool, LEDGER_ID_RETENTION_S)
        await self.target.forget_idle_consumers(CONSUMER_IDLE_MS)
        if self.settings.LEDGER_RETENTION_DAYS:
            today = dt.datetime.now(dt.UTC).date()
            before = today - dt.timedelta(days=self.settings.LEDGER_RETENTION_DAYS)
            await store.forget_old_ledger_days(self.pool, before)
