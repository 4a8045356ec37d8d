"""The two-level cache of recommendations, invalidated in every worker of every replica.

    L1  per worker: bounded LRU with a TTL (cachetools), answers `X-Cache: HIT-L1`
    L2  Redis, `rec:<user>` on the user's shard, fresh for L2_TTL_S, kept for L2_KEEP_S: `HIT-L2`
    MySQL                                                                             : `MISS`

Only computed answers are cached, never an error. With MySQL down, an L2 entry past its freshness
still answers (`STALE`); without one the request is a 503.

Bounded state: a user without history in the window (an unknown id, anyone can send one) gets
no L2 entry: their answer is the shared cold-start answer, kept only in the worker's bounded L1
(a flood of unknown ids costs MySQL lookups, never Redis memory). Every Redis key this cache
writes has a TTL (entries L2_KEEP_S, versions L2_KEEP_S, locks LOAD_LOCK_S), so a shard's
`volatile-lru` may evict any of them: an evicted entry is a miss, an evicted version only lets a
load that raced an invalidation more than L2_KEEP_S ago store its answer. Every in-process map is
bounded: L1 (L1_SIZE), the recent invalidations (INVALIDATED_MAX), the deferred ones
(DEFERRED_MAX), the flights (one per user being loaded by this worker's requests in flight).

One load per user at a time: within a worker, concurrent misses wait for the same future; across
workers and replicas, the first takes a short Redis lock (`rec:lock:<user>`) and the others poll
L2 for its result, so a stampede for one cold user costs one MySQL query in the whole cluster.

Invalidation (an event, or the admin endpoint) bumps the user's version `rec:ver:<user>`, deletes
the L2 entry and publishes the user id on `recommender:invalidate`; every worker is subscribed and
drops its L1 entry on receipt (milliseconds). A load that started before an invalidation must not
put its stale answer back: L2 writes are conditional on the version read before the load (a Lua
compare-and-set), and a worker does not keep in L1 what it loaded across an invalidation it saw.
An invalidation that cannot reach Redis (a shard down or stalled) is kept by the worker and
delivered again until it lands (`deliver_deferred`): a recorded event never waits for Redis.

Every wait is bounded: each Redis command by the shards' REDIS_TIMEOUT_S, and a request's wait for
MySQL (its own query, or another worker's load it polls for) by `load_timeout_s` in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from cachetools import TTLCache
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.problems import DependencyUnavailable
from services.common.redis_shards import RedisShards
from services.recommender.store import QUERY_TIMEOUT_S

log = logging.getLogger(__name__)
INVALIDATE_CHANNEL = "recommender:invalidate"
Source = Literal["HIT-L1", "HIT-L2", "MISS", "STALE"]
Body = dict[str, Any]
# (user ids, seconds it may take) -> answers; raises DependencyUnavailable when MySQL fails.
Loader = Callable[[Sequence[int], float], Awaitable[dict[int, Body]]]
REDIS_ERRORS = (RedisError, OSError)
# Invalidations a worker keeps for redelivery while Redis is unreachable; beyond this the oldest
# is given up (its L2 entry then ages out within RECOMMENDER_L2_TTL_S), so memory stays bounded.
DEFERRED_MAX = 100_000
# Users whose recent invalidation a worker remembers (so a load that raced it is not kept in L1).
INVALIDATED_MAX = 100_000
# How often deferred invalidations are tried again.
REDELIVERY_INTERVAL_S = 0.5

LOOKUPS = Counter("recommender_cache_lookups", "Answers by where they came from", ["result"])
INVALIDATIONS = Counter("recommender_invalidations", "Invalidation messages applied")
L1_ENTRIES = Gauge(
    "recommender_l1_entries",
    "Answers held in the workers' L1 caches (each worker at most RECOMMENDER_L1_SIZE)",
    multiprocess_mode="livesum",
)
DEFERRED = Gauge(
    "recommender_invalidations_deferred",
    "Invalidations waiting for Redis to be delivered again",
    multiprocess_mode="livesum",
)

# KEYS: entry, version, lock. ARGV: lock ms, the oldest `at` still fresh. One round trip: the
# entry if fresh, else the lock taken (or not) together with what L2 held at that instant.
_READ_OR_LOCK = """
local entry = redis.call('GET', KEYS[1])
local version = redis.call('GET', KEYS[2]) or '0'
if entry and tonumber(cjson.decode(entry)['at']) >= tonumber(ARGV[2]) then
  return {entry, version, 0}
end
local locked = 0
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then
  locked = 1
end
return {entry or '', version, locked}
"""
# KEYS: entry, version, lock. ARGV: version read before the load, value, keep seconds, unlock.
# The write happens only if no invalidation came in between; the lock goes in the same step, so
# no other loader can find the lock free and L2 not yet filled.
_STORE_IF_VERSION = """
local stored = 0
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  stored = 1
end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[3])
end
return stored
"""
_INVALIDATE = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""


def _keys(user_id: int) -> tuple[str, str, str]:
    return f"rec:{user_id}", f"rec:ver:{user_id}", f"rec:lock:{user_id}"


@dataclass(frozen=True)
class L2Entry:
    body: Body | None
    computed_at: float
    version: str


def _text(value: bytes | str | None, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def has_history(body: Body) -> bool:
    """Whether the answer comes from events of the user's (else it is the cold-start answer)."""
    counts = body.get("metadata", {})
    return bool(counts.get("search_count") or counts.get("purchase_count"))


def _entry(raw: bytes | str | None, version: bytes | str | None) -> L2Entry:
    decoded = orjson.loads(raw) if raw else None
    return L2Entry(
        decoded["body"] if decoded else None,
        float(decoded["at"]) if decoded else 0.0,
        _text(version, "0"),
    )


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
        self.shards = shards
        self.loader = loader
        self.l1: TTLCache[int, Body] = TTLCache(maxsize=l1_size, ttl=l1_ttl_s)
        self.l2_ttl_s = l2_ttl_s
        self.l2_keep_s = l2_keep_s
        self.lock_s = lock_s
        self.load_timeout_s = load_timeout_s
        # user -> None, in the order deferred (a dict is an ordered set)
        self._deferred: dict[int, None] = {}
        self._flights: dict[int, asyncio.Future[tuple[Body, Source]]] = {}
        # user -> monotonic time of the last invalidation this worker saw
        self._invalidated: TTLCache[int, float] = TTLCache(maxsize=INVALIDATED_MAX, ttl=60)

    def _redis(self, user_id: int) -> Redis:
        return self.shards.owner(str(user_id))[1]

    # --- reads --------------------------------------------------------------------------

    async def get(self, user_id: int) -> tuple[Body, Source]:
        body = self.l1.get(user_id)
        if body is not None:
            LOOKUPS.labels("HIT-L1").inc()
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
        LOOKUPS.labels(result[1]).inc()
        return result

    async def _get_uncached(self, user_id: int) -> tuple[Body, Source]:
        started = time.monotonic()
        # One MySQL budget per request, whether spent waiting for another loader or loading.
        mysql_by = started + self.load_timeout_s
        redis = self._redis(user_id)
        try:
            raw, version, locked = await redis.eval(
                _READ_OR_LOCK,
                3,
                *_keys(user_id),
                int(self.lock_s * 1000),
                time.time() - self.l2_ttl_s,
            )
            entry = _entry(raw, version)
        except REDIS_ERRORS as exc:
            log.warning("L2 unavailable, loading without it", extra={"error": repr(exc)})
            entry, locked = L2Entry(None, 0.0, "unknown"), 0
        fresh_enough = time.time() - entry.computed_at < self.l2_ttl_s
        if entry.body is not None and not locked and fresh_enough:
            self._keep(user_id, entry.body, started)
            return entry.body, "HIT-L2"
        if not locked and entry.version != "unknown":
            # Another worker is loading this user: its result lands in L2 shortly.
            deadline = min(time.monotonic() + self.lock_s, mysql_by)
            while time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                fresh, still_loading = await self._poll(user_id)
                if fresh.body is not None and fresh.computed_at > entry.computed_at:
                    self._keep(user_id, fresh.body, started)
                    return fresh.body, "HIT-L2"
                if not still_loading:
                    break  # the loader gave up (MySQL down?): no point waiting longer
        try:
            body, source = (
                await self._load(
                    [user_id],
                    {user_id: entry},
                    started,
                    timeout_s=mysql_by - time.monotonic(),
                    unlock=bool(locked),
                )
            )[user_id]
        except BaseException:
            if locked:
                await self._unlock([user_id])
            raise
        if body is None:
            raise DependencyUnavailable(
                "MySQL is not answering and nothing is cached for this user"
            )
        return body, source

    async def get_many(self, user_ids: Sequence[int]) -> dict[int, tuple[Body | None, Source]]:
        """Answers for a batch: L1, then one pipelined L2 read per shard, then one load."""
        started = time.monotonic()
        answers: dict[int, tuple[Body | None, Source]] = {}
        for user_id in user_ids:
            body = self.l1.get(user_id)
            if body is not None:
                answers[user_id] = (body, "HIT-L1")
        entries = await self._read_l2_many([u for u in user_ids if u not in answers])
        missing: dict[int, L2Entry] = {}
        for user_id, entry in entries.items():
            if entry.body is not None and time.time() - entry.computed_at < self.l2_ttl_s:
                self._keep(user_id, entry.body, started)
                answers[user_id] = (entry.body, "HIT-L2")
            else:
                missing[user_id] = entry
        if missing:
            answers.update(
                await self._load(list(missing), missing, started, timeout_s=self.load_timeout_s)
            )
        for body, source in answers.values():
            LOOKUPS.labels(source if body is not None else "ERROR").inc()
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
                await self._unlock(user_ids)
            # MySQL is down: a stale L2 copy is better than nothing; the rest have no answer.
            return {
                u: (seen[u].body, "STALE") if seen[u].body is not None else (None, "MISS")
                for u in user_ids
            }
        await self._store_l2(bodies, seen, unlock=unlock)
        for user_id, body in bodies.items():
            self._keep(user_id, body, started)
        return {u: (bodies[u], "MISS") for u in user_ids}

    def _keep(self, user_id: int, body: Body, started: float) -> None:
        invalidated = self._invalidated.get(user_id)
        if invalidated is None or invalidated < started:
            self.l1[user_id] = body
            L1_ENTRIES.set(len(self.l1))

    # --- Redis --------------------------------------------------------------------------

    async def _poll(self, user_id: int) -> tuple[L2Entry, bool]:
        """The L2 entry, and whether another worker still holds the user's load lock."""
        entry_key, version_key, lock = _keys(user_id)
        try:
            async with self._redis(user_id).pipeline(transaction=False) as pipe:
                pipe.get(entry_key)
                pipe.get(version_key)
                pipe.exists(lock)
                raw, version, held = await pipe.execute()
        except REDIS_ERRORS:
            return L2Entry(None, 0.0, "unknown"), False
        return _entry(raw, version), bool(held)

    async def _read_l2_many(self, user_ids: Sequence[int]) -> dict[int, L2Entry]:
        by_shard: dict[str, list[int]] = defaultdict(list)
        for user_id in user_ids:
            by_shard[self.shards.ring.shard_for(str(user_id))].append(user_id)

        async def one_shard(shard: str, users: list[int]) -> dict[int, L2Entry]:
            keys = [k for u in users for k in _keys(u)[:2]]
            try:
                values = await self.shards.clients[shard].mget(keys)
            except REDIS_ERRORS as exc:
                log.warning("L2 read failed", extra={"shard": shard, "error": repr(exc)})
                return {u: L2Entry(None, 0.0, "unknown") for u in users}
            return {
                user_id: _entry(values[2 * index], values[2 * index + 1])
                for index, user_id in enumerate(users)
            }

        results = await asyncio.gather(*(one_shard(s, u) for s, u in by_shard.items()))
        return {user_id: entry for part in results for user_id, entry in part.items()}

    async def _store_l2(
        self, bodies: dict[int, Body], seen: dict[int, L2Entry], *, unlock: bool
    ) -> None:
        """Write the loaded answers, one pipeline per shard, each a compare-and-set on the
        version read before the load (and, for a single-flight loader, the unlock)."""
        now = time.time()
        by_shard: dict[str, list[int]] = defaultdict(list)
        unlock_only: list[int] = []
        for user_id, body in bodies.items():
            if not has_history(body) and seen[user_id].body is None:
                # Not stored per id: an id without events costs no Redis memory (an entry that
                # exists, the user's events aged out, is overwritten as before).
                unlock_only.append(user_id)
            # Without the version (the read failed) a write could resurrect stale data.
            elif seen[user_id].version != "unknown":
                by_shard[self.shards.ring.shard_for(str(user_id))].append(user_id)
        if unlock and unlock_only:
            await self._unlock(unlock_only)

        async def one_shard(shard: str, users: list[int]) -> None:
            async with self.shards.clients[shard].pipeline(transaction=False) as pipe:
                for user_id in users:
                    value = orjson.dumps({"at": now, "body": bodies[user_id]})
                    pipe.eval(
                        _STORE_IF_VERSION,
                        3,
                        *_keys(user_id),
                        seen[user_id].version,
                        value,
                        self.l2_keep_s,
                        "1" if unlock else "0",
                    )
                await pipe.execute()

        results = await asyncio.gather(
            *(one_shard(s, u) for s, u in by_shard.items()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, RedisError | OSError):
                raise result

    async def _unlock(self, user_ids: Sequence[int]) -> None:
        for user_id in user_ids:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._redis(user_id).delete(_keys(user_id)[2])

    # --- invalidation -------------------------------------------------------------------

    async def invalidate(self, user_id: int) -> None:
        """Everywhere: L2 now, every worker's L1 through the published message. Raises
        DependencyUnavailable when Redis cannot be reached (nothing is kept for later)."""
        self.drop_local(user_id)
        try:
            await self._invalidate_in_redis(user_id)
        except REDIS_ERRORS as exc:
            raise DependencyUnavailable("the cache could not be invalidated") from exc

    async def invalidate_or_defer(self, user_id: int) -> bool:
        """Invalidate now if Redis answers, else keep it for `deliver_deferred`; never raises
        for Redis. Returns whether it was delivered now."""
        self.drop_local(user_id)
        try:
            await self._invalidate_in_redis(user_id)
        except REDIS_ERRORS as exc:
            log.warning(
                "invalidation deferred: Redis unreachable",
                extra={"user_id": user_id, "error": repr(exc)},
            )
            self._defer(user_id)
            return False
        return True

    async def _invalidate_in_redis(self, user_id: int) -> None:
        # The entry goes before the message: a worker that drops its L1 on the message and reads
        # L2 at once must not find the old entry there.
        entry_key, version_key, _ = _keys(user_id)
        await self._redis(user_id).eval(_INVALIDATE, 2, entry_key, version_key, self.l2_keep_s)
        owner = self.shards.owner(INVALIDATE_CHANNEL)[1]
        await owner.publish(INVALIDATE_CHANNEL, str(user_id))

    def _defer(self, user_id: int) -> None:
        self._deferred.pop(user_id, None)
        self._deferred[user_id] = None
        while len(self._deferred) > DEFERRED_MAX:
            given_up = next(iter(self._deferred))
            del self._deferred[given_up]
            log.error("deferred invalidation given up", extra={"user_id": given_up})
        DEFERRED.set(len(self._deferred))

    async def deliver_deferred(self) -> None:
        """One pass over the deferred invalidations. A shard that fails once is not tried again
        in this pass (it is down or stalled: each try would cost its timeout), and a failed
        publish ends the pass (the channel's shard is the same for every user)."""
        failed_shards: set[str] = set()
        for user_id in list(self._deferred):
            shard = self.shards.ring.shard_for(str(user_id))
            if shard in failed_shards:
                continue
            try:
                await self._invalidate_in_redis(user_id)
            except REDIS_ERRORS:
                failed_shards.add(shard)
                if self.shards.ring.shard_for(INVALIDATE_CHANNEL) == shard:
                    break
                continue
            self._deferred.pop(user_id, None)
            # Again here: a load in this worker may have kept the old answer meanwhile.
            self.drop_local(user_id)
        DEFERRED.set(len(self._deferred))

    async def _keep_delivering(self) -> None:
        while True:
            await asyncio.sleep(REDELIVERY_INTERVAL_S)
            if self._deferred:
                await self.deliver_deferred()

    def drop_local(self, user_id: int) -> None:
        self._invalidated[user_id] = time.monotonic()
        self.l1.pop(user_id, None)
        L1_ENTRIES.set(len(self.l1))

    async def follow(self) -> None:
        """Keep this worker coherent with the cluster for the life of the app: apply every
        published invalidation to its L1, and deliver the invalidations it had to defer."""
        await asyncio.gather(self._follow_feed(), self._keep_delivering())

    async def _follow_feed(self) -> None:
        """Apply every published invalidation to this worker's L1, reconnecting as needed."""
        redis = self.shards.owner(INVALIDATE_CHANNEL)[1]
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(INVALIDATE_CHANNEL)
                    # Messages sent while we were not subscribed are lost: start clean.
                    self.l1.clear()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            with contextlib.suppress(ValueError):
                                self.drop_local(int(message["data"]))
                                INVALIDATIONS.inc()
            except REDIS_ERRORS as exc:
                log.warning("invalidation feed interrupted, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
