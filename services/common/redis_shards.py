"""One async Redis client per shard, and the ring that says which shard owns a key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from redis.asyncio import BlockingConnectionPool, Redis

from services.common.ring import ShardRing


class RedisShards:
    def __init__(self, urls: Mapping[str, str], *, pool_size: int, timeout_s: float) -> None:
        self.ring = ShardRing(urls)
        self.clients: dict[str, Redis] = {}
        for name, url in urls.items():
            # A blocking pool makes a burst wait (up to timeout_s) for a connection instead of
            # failing with "too many connections".
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=pool_size,
                timeout=timeout_s,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
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
