"""The sets every instance serves from memory, and how a new ingest reaches them.

An instance loads all sets from MySQL at start, then reloads when the ingest publishes a new
generation on Redis (`banner:sets`) and, as a fallback for a missed message or a Redis outage, when
its periodic check sees the generation in MySQL change. Serving never waits for either: the swap
is one assignment of a new dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import aiomysql
from redis.asyncio import Redis

from services.banner import store
from services.banner.metrics import GENERATION
from services.banner.rules import BannerSet
from services.common.pubsub import follow
from services.common.store_errors import MYSQL_ERRORS

log = logging.getLogger(__name__)
SETS_CHANNEL = "banner:sets"
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
        async with self._lock:
            known = self.generation if self.sets else None
            generation, loaded = await store.load_sets(self.pool, unless=known)
            if generation == known:
                return False
        sets = {(s.quarter, s.campaign_id): s for s in loaded}
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
        listener = asyncio.create_task(
            # Subscribed (again): reload once, in case an ingest finished while we were away.
            follow(redis, SETS_CHANNEL, self._on_generation, on_subscribed=self._bounded_reload)
        )
        try:
            while True:
                await asyncio.sleep(self.check_interval_s)
                with contextlib.suppress(*MYSQL_ERRORS):
                    await self._bounded_reload()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _on_generation(self, _message: bytes) -> None:
        await self._bounded_reload()

    async def _bounded_reload(self) -> None:
        async with asyncio.timeout(RELOAD_TIMEOUT_S):
            await self.reload()
