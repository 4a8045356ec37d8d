"""One async Redis client per shard, and the ring that says which shard owns a key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from services.common.ring import ShardRing


class RedisShards:
    def __init__(self, urls: Mapping[str, str], *, pool_size: int, timeout_s: float) -> None:
        self.ring = ShardRing(urls)
        self.clients: dict[str, Redis] = {}
        for name, url in urls.items():
            # A blocking pool makes a burst wait (up to timeout_s) for a connection instead of
            # failing with "too many connections". After a shard restarts, every pooled
            # connection is dead: one immediate retry on a fresh connection turns that into no
            # error at all. Writes are idempotent scripts, or (the gift-code pool) guarded by the
            # MySQL record, so a repeat after a lost reply does no harm.
            # Timeouts are not retried, so a dead shard costs timeout_s, not twice that.
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=pool_size,
                timeout=timeout_s,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
            )
            self.clients[name] = Redis(connection_pool=pool)

    def owner(self, key: str) -> tuple[str, Redis]:
        name = self.ring.shard_for(key)
        return name, self.clients[name]

    async def ping(self, name: str, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self.clients[name].ping()

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
            # A client handed its own pool does not close it.
            await client.connection_pool.disconnect()
