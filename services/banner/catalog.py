"""The sets every instance serves from memory, and how a new ingest reaches them.

An instance loads all sets from MySQL at start, then reloads when the ingest publishes a new
generation on Redis (`banner:sets`) and, as a fallback for a missed message or a Redis outage, when
its periodic check sees the generation in MySQL change. Serving never waits for either: the swap
is one assignment of a new dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping

import aiomysql
from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.banner.rules import BannerSet

log = logging.getLogger(__name__)
SETS_CHANNEL = "banner:sets"
GENERATION = Gauge(
    "banner_sets_generation",
    "Generation of the banner sets this worker serves",
    multiprocess_mode="livemin",
)
# A reload in the background that MySQL does not answer (stalled) is given up and tried again at
# the next check, rather than holding the loop, and a pooled connection, for good.
RELOAD_TIMEOUT_S = 10.0


class Catalog:
    def __init__(self, pool: aiomysql.Pool, *, check_interval_s: float) -> None:
        self.pool = pool
        self.check_interval_s = check_interval_s
        self.generation = 0
        self.sets: Mapping[tuple[int, int], BannerSet] = {}
        self.banner_ids: frozenset[int] = frozenset()
        self.campaign_ids: frozenset[int] = frozenset()
        self._lock = asyncio.Lock()

    async def reload(self) -> bool:
        """Load the sets if the generation changed; True when it did."""
        async with self._lock, self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT generation FROM banner_generation WHERE id = 1")
            row = await cur.fetchone()
            generation = int(row[0]) if row else 0
            if generation == self.generation and self.sets:
                return False
            await cur.execute("SELECT quarter, campaign_id, x, rule, banners FROM banner_sets")
            rows = await cur.fetchall()
        sets = {
            (int(q), int(c)): BannerSet(int(q), int(c), int(x), rule, tuple(json.loads(banners)))
            for q, c, x, rule, banners in rows
        }
        self.sets = sets
        self.banner_ids = frozenset(b for s in sets.values() for b in s.banners)
        self.campaign_ids = frozenset(c for _, c in sets)
        self.generation = generation
        GENERATION.set(generation)
        log.info("banner sets loaded", extra={"generation": generation, "sets": len(sets)})
        return True

    def current(self, quarter: int, campaign_id: int) -> BannerSet | None:
        return self.sets.get((quarter, campaign_id))

    async def follow(self, redis: Redis) -> None:
        """Reload on every published generation; check MySQL periodically in any case."""
        listener = asyncio.create_task(self._listen(redis))
        try:
            while True:
                await asyncio.sleep(self.check_interval_s)
                with contextlib.suppress(aiomysql.Error, OSError, TimeoutError):
                    async with asyncio.timeout(RELOAD_TIMEOUT_S):
                        await self.reload()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, redis: Redis) -> None:
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(SETS_CHANNEL)
                    # Subscribed: reload once, in case an ingest finished while we were away.
                    async with asyncio.timeout(RELOAD_TIMEOUT_S):
                        await self.reload()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            async with asyncio.timeout(RELOAD_TIMEOUT_S):
                                await self.reload()
            except (RedisError, OSError, aiomysql.Error, TimeoutError) as exc:
                log.warning("set updates interrupted, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1)
