"""A shard at its memory bound refuses writes (noeviction: an evicted key would be a lost count)
and the cluster turns that into explicit backpressure on that shard's pages only: a 503 with
Retry-After, never a 500, never a count lost; the other shard's pages are served as usual. And
every shard of every deployment has such a bound."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import httpx
import pytest
import redis

from services.common.ring import ShardRing
from services.counter.app import build_app
from services.counter.pages import visits_key
from services.counter.settings import CounterSettings
from tests.support.asgi import serve
from tests.support.cluster import RunningCluster
from tests.support.processes import redis_server

pytestmark = pytest.mark.cluster  # its own redis-servers

TOKEN = "full-shard-test-token-0123456789"
PENDING_CAP = 200


def test_every_shard_of_the_test_cluster_has_a_bound_and_never_evicts(
    cluster: RunningCluster,
) -> None:
    for shard in cluster.topo.shard_names:
        config = cluster.redis(shard).config_get("maxmemory*")
        assert int(str(config["maxmemory"])) > 0, shard
        assert config["maxmemory-policy"] == "noeviction", shard


async def test_a_full_shard_gets_explicit_503s_for_its_pages_only(tmp_path: Path) -> None:
    with (
        redis_server(tmp_path / "full") as full_port,
        redis_server(tmp_path / "roomy") as roomy_port,
    ):
        full = redis.Redis(port=full_port)
        # Above what an empty server uses by a little: the first thousands of keys fill it.
        full.config_set("maxmemory", int(full.info("memory")["used_memory"]) + 400_000)
        full.config_set("maxmemory-policy", "noeviction")
        shards = {
            "full": f"redis://127.0.0.1:{full_port}",
            "roomy": f"redis://127.0.0.1:{roomy_port}",
        }
        ring = ShardRing(shards)
        pages = (f"flood-{i:06d}-{'x' * 100}" for i in itertools.count())
        on_full = (p for p in pages if ring.shard_for(p) == "full")
        roomy_page = next(
            p for p in (f"roomy-{i}" for i in itertools.count()) if ring.shard_for(p) == "roomy"
        )
        settings = CounterSettings(
            ADMIN_TOKEN=TOKEN,
            REDIS_SHARDS=shards,
            FLUSH_INTERVAL_S=0.05,
            MAX_PENDING=PENDING_CAP,
            RETRY_MAX_S=0.5,
        )
        statuses: dict[int, int] = {}
        accepted: list[str] = []
        async with serve(build_app(settings)) as client:
            refused: httpx.Response | None = None
            deadline = time.monotonic() + 60
            # Unique pages, 50 at a time with a pause for the flushes, until the shard is full
            # and the buffer for it reaches its cap.
            while refused is None and time.monotonic() < deadline and len(accepted) < 200_000:
                batch = [next(on_full) for _ in range(50)]
                answers = await asyncio.gather(*(client.post(f"/visits/{p}") for p in batch))
                for page, answer in zip(batch, answers, strict=True):
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    if answer.status_code == 200:
                        accepted.append(page)
                    elif answer.status_code == 503:
                        refused = answer
                await asyncio.sleep(0.06)
            assert refused is not None, statuses
            assert len(accepted) > PENDING_CAP  # the shard took writes until it was full
            assert set(statuses) <= {200, 503}, statuses
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"]
            # The other shard's pages are unaffected.
            assert (await client.post(f"/visits/{roomy_page}")).status_code == 200
            # The full shard's memory stayed within its bound (plus Redis's own slack).
            memory = full.info("memory")
            assert memory["used_memory"] <= memory["maxmemory"] * 1.1
            # Room again: everything accepted reaches the shard, counted once.
            full.config_set("maxmemory", 0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stored = sum(int(v or 0) for v in full.mget([visits_key(p) for p in accepted]))
                if stored == len(accepted):
                    break
                await asyncio.sleep(0.2)
            assert stored == len(accepted)
        full.close()
