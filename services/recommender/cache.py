"""The two-level cache of recommendations: where an answer comes from, one load at a time.

    L1  per worker (local_cache.py)                                     : `X-Cache: HIT-L1`
    L2  Redis, shared by every worker (shared_cache.py)                 : `HIT-L2`
    MySQL, through the loader (recommending.py)                         : `MISS`

Only computed answers are cached, never an error. With MySQL down, an L2 entry past its freshness
still answers (`STALE`); without one the request is a 503. A user without history in the window
(an unknown id, anyone can send one) gets no L2 entry: their answer is the shared cold-start
answer, kept only in the worker's bounded L1 (a flood of unknown ids costs MySQL lookups, never
Redis memory). Every in-process map is bounded: L1, the recent and the deferred invalidations,
the flights (one per user being loaded by this worker's requests in flight).

One load per user at a time: within a worker, concurrent misses wait for the same future; across
workers and replicas, the first takes a short Redis lock and the others poll L2 for its result,
so a stampede for one cold user costs one MySQL query in the whole cluster. Invalidation
(invalidation.py) reaches every worker; a load that started before an invalidation does not put
its stale answer back (L2 writes are compare-and-set on the version, and L1 remembers the
invalidations it saw).

Every wait is bounded: each Redis command by the shards' REDIS_TIMEOUT_S, and a request's wait for
MySQL (its own query, or another worker's load it polls for) by `load_timeout_s` in all.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from services.common.problems import DependencyUnavailable
from services.common.redis_shards import RedisShards
from services.recommender.invalidation import Invalidations
from services.recommender.local_cache import Body, LocalCache
from services.recommender.metrics import lookups_of
from services.recommender.shared_cache import UNREAD, L2Entry, SharedCache
from services.recommender.store import QUERY_TIMEOUT_S

Source = Literal["HIT-L1", "HIT-L2", "MISS", "STALE"]
# (user ids, seconds it may take) -> answers; raises DependencyUnavailable when MySQL fails.
Loader = Callable[[Sequence[int], float], Awaitable[dict[int, Body]]]
# How often a request waiting for another worker's load looks at L2 again.
POLL_INTERVAL_S = 0.01


class RecommendationCache:
    def __init__(
        self,
        shards: RedisShards,
        loader: Loader,
        *,
        l1_size: int,
        l1_ttl_s: float,
        l2_ttl_s: float,
        l2_keep_s: int,
        lock_s: float,
        load_timeout_s: float = QUERY_TIMEOUT_S,
    ) -> None:
        self.loader = loader
        self.l1 = LocalCache(l1_size, l1_ttl_s)
        self.l2 = SharedCache(shards, ttl_s=l2_ttl_s, keep_s=l2_keep_s, lock_s=lock_s)
        self.invalidations = Invalidations(self.l1, self.l2)
        self.load_timeout_s = load_timeout_s
        self._flights: dict[int, asyncio.Future[tuple[Body, Source]]] = {}

    async def get(self, user_id: int) -> tuple[Body, Source]:
        body = self.l1.get(user_id)
        if body is not None:
            lookups_of("HIT-L1").inc()
            return body, "HIT-L1"
        flight = self._flights.get(user_id)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[user_id] = flight
        try:
            result = await self._get_uncached(user_id)
        except BaseException as exc:
            flight.set_exception(exc)
            # Waiters got the exception; the future's own copy must not be reported unretrieved.
            flight.exception()
            raise
        else:
            flight.set_result(result)
        finally:
            del self._flights[user_id]
        lookups_of(result[1]).inc()
        return result

    async def _get_uncached(self, user_id: int) -> tuple[Body, Source]:
        started = time.monotonic()
        # One MySQL budget per request, whether spent waiting for another loader or loading.
        mysql_by = started + self.load_timeout_s
        entry, locked = await self.l2.read_or_lock(user_id)
        if entry.body is not None and not locked and self.l2.is_fresh(entry):
            self.l1.keep(user_id, entry.body, started)
            return entry.body, "HIT-L2"
        if not locked and entry.version is not UNREAD:
            polled = await self._wait_for_other_loader(user_id, entry, started, mysql_by)
            if polled is not None:
                return polled, "HIT-L2"
        try:
            body, source = (
                await self._load(
                    [user_id],
                    {user_id: entry},
                    started,
                    timeout_s=mysql_by - time.monotonic(),
                    unlock=locked,
                )
            )[user_id]
        except BaseException:
            if locked:
                await self.l2.unlock([user_id])
            raise
        if body is None:
            raise DependencyUnavailable(
                "MySQL is not answering and nothing is cached for this user"
            )
        return body, source

    async def _wait_for_other_loader(
        self, user_id: int, seen: L2Entry, started: float, mysql_by: float
    ) -> Body | None:
        """Another worker holds the user's lock: its result lands in L2 shortly. That result,
        or None once the lock is gone without one (MySQL down?) or the wait is over."""
        deadline = min(time.monotonic() + self.l2.lock_s, mysql_by)
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL_S)
            fresh, still_loading = await self.l2.poll(user_id)
            if fresh.body is not None and fresh.computed_at > seen.computed_at:
                self.l1.keep(user_id, fresh.body, started)
                return fresh.body
            if not still_loading:
                break  # the loader gave up: no point waiting longer
        return None

    async def get_many(self, user_ids: Sequence[int]) -> dict[int, tuple[Body | None, Source]]:
        """Answers for a batch: L1, then one pipelined L2 read per shard, then one load."""
        started = time.monotonic()
        answers: dict[int, tuple[Body | None, Source]] = {}
        for user_id in user_ids:
            body = self.l1.get(user_id)
            if body is not None:
                answers[user_id] = (body, "HIT-L1")
        entries = await self.l2.read_many([u for u in user_ids if u not in answers])
        missing: dict[int, L2Entry] = {}
        for user_id, entry in entries.items():
            if entry.body is not None and self.l2.is_fresh(entry):
                self.l1.keep(user_id, entry.body, started)
                answers[user_id] = (entry.body, "HIT-L2")
            else:
                missing[user_id] = entry
        if missing:
            answers.update(
                await self._load(list(missing), missing, started, timeout_s=self.load_timeout_s)
            )
        # One increment per kind of answer, not per user: each is a write to the worker's metrics
        # file, and 20 of them were a tenth of a cached batch's CPU.
        tally = Counter(
            source if body is not None else "ERROR" for body, source in answers.values()
        )
        for result, n in tally.items():
            lookups_of(result).inc(n)
        return answers

    async def _load(
        self,
        user_ids: list[int],
        seen: dict[int, L2Entry],
        started: float,
        *,
        timeout_s: float,
        unlock: bool = False,
    ) -> dict[int, tuple[Body | None, Source]]:
        try:
            if timeout_s <= 0:
                raise DependencyUnavailable("the MySQL budget went on waiting for another loader")
            bodies = await self.loader(user_ids, timeout_s)
        except DependencyUnavailable:
            if unlock:
                await self.l2.unlock(user_ids)
            # MySQL is down: a stale L2 copy is better than nothing; the rest have no answer.
            return {
                u: (seen[u].body, "STALE") if seen[u].body is not None else (None, "MISS")
                for u in user_ids
            }
        await self.l2.store_many(bodies, seen, unlock=unlock)
        for user_id, body in bodies.items():
            self.l1.keep(user_id, body, started)
        return {u: (bodies[u], "MISS") for u in user_ids}

    async def invalidate(self, user_id: int) -> None:
        """Everywhere, now; DependencyUnavailable when Redis cannot be reached."""
        await self.invalidations.invalidate(user_id)

    async def invalidate_or_defer(self, user_id: int) -> bool:
        """Everywhere, now or (Redis unreachable) later; whether it was delivered now."""
        return await self.invalidations.invalidate_or_defer(user_id)

    async def follow(self) -> None:
        """Keep this worker coherent with the cluster for the life of the app: apply every
        published invalidation to its L1, and deliver the invalidations it had to defer."""
        await asyncio.gather(self.invalidations.follow_feed(), self.invalidations.keep_delivering())
