"""Shard clients against real Redis servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.redis_shards import RedisShards
from tests.support.processes import free_port, redis_server

pytestmark = pytest.mark.cluster  # real redis-servers, restarted


async def test_a_restarted_shard_is_used_again_without_an_error(tmp_path: Path) -> None:
    port = free_port()
    shards = RedisShards({"only": f"redis://127.0.0.1:{port}"}, pool_size=8, timeout_s=1)
    client = shards.clients["only"]
    try:
        with redis_server(tmp_path / "data", port):
            # Several pooled connections, all of which the restart will break.
            for _ in range(3):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.incr("n")
                    await pipe.execute()
            assert int(await client.get("n") or 0) == 3
        with redis_server(tmp_path / "data", port):
            # AOF brought the value back; the dead pooled connection is replaced on the fly.
            assert int(await client.incr("n")) == 4
            assert await client.ping()
    finally:
        await shards.close()
