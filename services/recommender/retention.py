"""Retention: events (and idempotency keys) older than RECOMMENDER_RETENTION_DAYS are deleted, so
MySQL holds at most the retention's worth of what clients sent (docs/recommender.md, "Bounded
state"). Scoring reads the window only (RECOMMENDER_WINDOW_DAYS <= the retention), so no answer
changes.

A pass deletes each table's old rows in statements of at most `batch` rows, the oldest first
(`DELETE ... WHERE time < cutoff ORDER BY time LIMIT batch`, served by the index on the time
column), pausing between statements, until a statement deletes fewer than `batch`. Each statement
is bounded in time (store.delete_older). Every worker runs the loop; a Redis lock (SET NX with the
interval as its lifetime) lets one pass run per interval in the whole cluster. Without Redis each
worker runs its own: deleting rows another one deleted already deletes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

import aiomysql

from services.common.redis_shards import RedisShards
from services.common.store_errors import MYSQL_ERRORS, REDIS_ERRORS
from services.recommender import store
from services.recommender.metrics import DELETED, PASSES

log = logging.getLogger(__name__)
LOCK_KEY = "recommender:retention"


class Retention:
    def __init__(
        self,
        pool: aiomysql.Pool,
        days: int,
        *,
        batch: int = 10_000,
        pause_s: float = 0.2,
        redis: RedisShards | None = None,
    ) -> None:
        self.pool = pool
        self.days = days
        self.batch = batch
        self.pause_s = pause_s
        self.redis = redis
        self.token = uuid.uuid4().hex

    def cutoff(self, now: dt.datetime) -> dt.datetime:
        """Rows before this (naive UTC, as MySQL holds times) are deleted."""
        return (now.astimezone(dt.UTC) - dt.timedelta(days=self.days)).replace(tzinfo=None)

    async def run_pass(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Delete every row older than the retention as of `now`; the rows deleted per table.
        Raises MYSQL_ERRORS (what was deleted before the failure stays deleted)."""
        cutoff = self.cutoff(now or dt.datetime.now(dt.UTC))
        deleted: dict[str, int] = {}
        first = True
        for table, column in store.RETAINED:
            deleted[table] = 0
            while True:
                if not first:
                    await asyncio.sleep(self.pause_s)
                first = False
                n = await store.delete_older(self.pool, table, column, cutoff, self.batch)
                deleted[table] += n
                DELETED.labels(table).inc(n)
                if n < self.batch:
                    break
        return deleted

    async def _my_turn(self, interval_s: float) -> bool:
        """Whether this worker runs this interval's pass: the lock is free (or Redis is not
        answering, when every worker runs its own: harmless)."""
        if self.redis is None:
            return True
        _, client = self.redis.owner(LOCK_KEY)
        try:
            taken = await client.set(LOCK_KEY, self.token, nx=True, px=int(interval_s * 1000))
        except REDIS_ERRORS as exc:
            log.warning("retention lock unavailable; running anyway", extra={"error": repr(exc)})
            return True
        return bool(taken)

    async def keep(self, interval_s: float) -> None:
        """A pass now (when it is this worker's turn), then one every `interval_s`."""
        while True:
            if await self._my_turn(interval_s):
                try:
                    deleted = await self.run_pass()
                except MYSQL_ERRORS as exc:
                    PASSES.labels("failed").inc()
                    log.warning("retention pass failed", extra={"error": repr(exc)})
                else:
                    PASSES.labels("done").inc()
                    if any(deleted.values()):
                        log.info("retention pass", extra={"deleted": deleted})
            await asyncio.sleep(interval_s)
