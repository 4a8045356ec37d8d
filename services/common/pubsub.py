"""One Redis pub/sub subscriber for the whole kit: subscribe, resync, handle, reconnect.

Pub/sub delivers only to connected subscribers, so every (re)subscription starts with
`on_subscribed`: the subscriber catches up on whatever it may have missed (reload the banner
sets, clear the recommender's L1) before it trusts the feed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from services.common.store_errors import MYSQL_ERRORS, REDIS_ERRORS
from services.common.throttled_log import ThrottledWarnings

log = logging.getLogger(__name__)
_warnings = ThrottledWarnings(log)
# Short enough that a restarted shard is followed again within a second, long enough that a
# shard that refuses connections costs one attempt per interval, not a busy loop.
RESUBSCRIBE_S = 0.5


async def follow(
    redis: Redis,
    channel: str,
    on_message: Callable[[bytes], Awaitable[None]],
    *,
    on_subscribed: Callable[[], Awaitable[None]],
    retry_s: float = RESUBSCRIBE_S,
) -> None:
    """Run until cancelled. A handler's store error interrupts the feed like a lost connection
    (the resync on resubscribe repairs what the handler could not do)."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                await on_subscribed()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        await on_message(message["data"])
        except (*REDIS_ERRORS, *MYSQL_ERRORS) as exc:
            _warnings.warn(channel, "subscription interrupted, retrying", error=repr(exc))
            await asyncio.sleep(retry_s)
