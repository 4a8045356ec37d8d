"""Invalidation in every worker of every replica: L2 at once, each L1 through a pub/sub feed.

Invalidating a user (an event, or the admin endpoint) drops this worker's L1 entry, bumps the
user's L2 version and deletes the L2 entry, then publishes the user id on
`recommender:invalidate`; every worker follows the channel and drops its L1 entry on receipt
(milliseconds). Messages published while a worker was not subscribed are lost, so each
(re)subscription clears its whole L1.

An invalidation that cannot reach Redis (a shard down or stalled) is kept by the worker and
delivered again until it lands (`deliver_deferred`), so a recorded event never waits for Redis.
The deferred set is bounded (DEFERRED_MAX): beyond it the oldest is given up, and its L2 entry
ages out within RECOMMENDER_L2_TTL_S.
"""

from __future__ import annotations

import asyncio
import logging

from services.common.problems import DependencyUnavailable
from services.common.pubsub import follow
from services.common.store_errors import REDIS_ERRORS
from services.common.throttled_log import ThrottledWarnings
from services.recommender.local_cache import LocalCache
from services.recommender.metrics import DEFERRED, INVALIDATIONS
from services.recommender.shared_cache import SharedCache

log = logging.getLogger(__name__)
_warnings = ThrottledWarnings(log)
INVALIDATE_CHANNEL = "recommender:invalidate"
# Invalidations a worker keeps for redelivery while Redis is unreachable.
DEFERRED_MAX = 100_000
# How often deferred invalidations are tried again.
REDELIVERY_INTERVAL_S = 0.5


class Invalidations:
    def __init__(self, l1: LocalCache, l2: SharedCache) -> None:
        self.l1 = l1
        self.l2 = l2
        # user -> None, in the order deferred (a dict is an ordered set)
        self._deferred: dict[int, None] = {}

    async def invalidate(self, user_id: int) -> None:
        """Everywhere, now. Raises DependencyUnavailable when Redis cannot be reached (nothing
        is kept for later)."""
        self.l1.drop(user_id)
        try:
            await self._everywhere(user_id)
        except REDIS_ERRORS as exc:
            raise DependencyUnavailable("the cache could not be invalidated") from exc

    async def invalidate_or_defer(self, user_id: int) -> bool:
        """Invalidate now if Redis answers, else keep it for `deliver_deferred`; never raises
        for Redis. Returns whether it was delivered now."""
        self.l1.drop(user_id)
        try:
            await self._everywhere(user_id)
        except REDIS_ERRORS as exc:
            _warnings.warn(
                f"deferred:{self.l2.shard_of(user_id)}",
                "invalidation deferred: Redis unreachable",
                user_id=user_id,
                error=repr(exc),
            )
            self._defer(user_id)
            return False
        return True

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    async def _everywhere(self, user_id: int) -> None:
        # The entry goes before the message: a worker that drops its L1 on the message and reads
        # L2 at once must not find the old entry there.
        await self.l2.invalidate(user_id)
        owner = self.l2.shards.owner(INVALIDATE_CHANNEL)[1]
        await owner.publish(INVALIDATE_CHANNEL, str(user_id))

    def _defer(self, user_id: int) -> None:
        self._deferred.pop(user_id, None)
        self._deferred[user_id] = None
        while len(self._deferred) > DEFERRED_MAX:
            given_up = next(iter(self._deferred))
            del self._deferred[given_up]
            _warnings.warn("given-up", "deferred invalidation given up", user_id=given_up)
        DEFERRED.set(len(self._deferred))

    async def deliver_deferred(self) -> None:
        """One pass over the deferred invalidations. A shard that fails once is not tried again
        in this pass (it is down or stalled: each try would cost its timeout), and a failed
        publish ends the pass (the channel's shard is the same for every user)."""
        channel_shard = self.l2.shards.ring.shard_for(INVALIDATE_CHANNEL)
        failed_shards: set[str] = set()
        for user_id in list(self._deferred):
            shard = self.l2.shard_of(user_id)
            if shard in failed_shards:
                continue
            try:
                await self._everywhere(user_id)
            except REDIS_ERRORS:
                failed_shards.add(shard)
                if shard == channel_shard:
                    break
                continue
            self._deferred.pop(user_id, None)
            # Again here: a load in this worker may have kept the old answer meanwhile.
            self.l1.drop(user_id)
        DEFERRED.set(len(self._deferred))

    async def keep_delivering(self) -> None:
        while True:
            await asyncio.sleep(REDELIVERY_INTERVAL_S)
            if self._deferred:
                await self.deliver_deferred()

    async def follow_feed(self) -> None:
        """Apply every published invalidation to this worker's L1, for the life of the app."""

        async def on_subscribed() -> None:
            # Messages sent while we were not subscribed are lost: start clean.
            self.l1.clear()

        async def on_message(data: bytes) -> None:
            try:
                user_id = int(data)
            except ValueError:
                return  # not ours: nothing to drop
            self.l1.drop(user_id)
            INVALIDATIONS.inc()

        redis = self.l2.shards.owner(INVALIDATE_CHANNEL)[1]
        await follow(redis, INVALIDATE_CHANNEL, on_message, on_subscribed=on_subscribed)
