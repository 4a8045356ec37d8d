"""L2: the answers every worker of every replica shares, in Redis (`X-Cache: HIT-L2`).

`rec:<user>` on the user's shard holds `{"at": computed, "body": answer}`, fresh for L2_TTL_S and
kept for L2_KEEP_S in all, so a stale copy can answer while MySQL is down. `rec:ver:<user>` is
the user's version, bumped by every invalidation: a write is a compare-and-set on the version
read before the load, so a load that raced an invalidation never stores its stale answer.
`rec:lock:<user>` is the cluster-wide single-flight lock of a user's load (LOAD_LOCK_S).

Bounded state: every key written here has a TTL (entries and versions L2_KEEP_S, locks
LOAD_LOCK_S), so a shard's `volatile-lru` may evict any of them: an evicted entry is a miss, an
evicted version only lets a load that raced an invalidation more than L2_KEEP_S ago store its
answer. A user without history in the window gets no entry (see `store_many`).

Reads never raise for Redis: an entry that cannot be read is `UNREAD_ENTRY`, whose version is
the `Unread` sentinel, and nothing is written back for it (without the version, a write could
resurrect stale data).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson
from redis.asyncio import Redis

from services.common.redis_shards import RedisShards
from services.common.store_errors import REDIS_ERRORS
from services.common.throttled_log import ThrottledWarnings
from services.recommender.local_cache import Body

log = logging.getLogger(__name__)
_warnings = ThrottledWarnings(log)

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


class Unread(enum.Enum):
    """The version of an entry Redis did not answer for."""

    VERSION = "unread"


UNREAD: Final = Unread.VERSION


@dataclass(frozen=True)
class L2Entry:
    body: Body | None
    computed_at: float
    version: str | Unread


UNREAD_ENTRY: Final = L2Entry(None, 0.0, UNREAD)


def _keys(user_id: int) -> tuple[str, str, str]:
    return f"rec:{user_id}", f"rec:ver:{user_id}", f"rec:lock:{user_id}"


def _text(value: bytes | str | None, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(raw: bytes | str | None, version: bytes | str | None) -> L2Entry:
    decoded = orjson.loads(raw) if raw else None
    return L2Entry(
        decoded["body"] if decoded else None,
        float(decoded["at"]) if decoded else 0.0,
        _text(version, "0"),
    )


def has_history(body: Body) -> bool:
    """Whether the answer comes from events of the user's (else it is the cold-start answer)."""
    counts = body.get("metadata", {})
    return bool(counts.get("search_count") or counts.get("purchase_count"))


class SharedCache:
    def __init__(self, shards: RedisShards, *, ttl_s: float, keep_s: int, lock_s: float) -> None:
        self.shards = shards
        self.ttl_s = ttl_s
        self.keep_s = keep_s
        self.lock_s = lock_s

    def _redis(self, user_id: int) -> Redis:
        return self.shards.owner(str(user_id))[1]

    def shard_of(self, user_id: int) -> str:
        return self.shards.ring.shard_for(str(user_id))

    def is_fresh(self, entry: L2Entry) -> bool:
        return entry.body is not None and time.time() - entry.computed_at < self.ttl_s

    async def read_or_lock(self, user_id: int) -> tuple[L2Entry, bool]:
        """The entry, and whether this caller took the user's load lock (never when the entry
        is fresh). Redis failing: UNREAD_ENTRY, no lock."""
        try:
            raw, version, locked = await self._redis(user_id).eval(
                _READ_OR_LOCK,
                3,
                *_keys(user_id),
                int(self.lock_s * 1000),
                time.time() - self.ttl_s,
            )
        except REDIS_ERRORS as exc:
            _warnings.warn(
                f"l2:{self.shard_of(user_id)}",
                "L2 unavailable, loading without it",
                error=repr(exc),
            )
            return UNREAD_ENTRY, False
        return _entry(raw, version), bool(locked)

    async def poll(self, user_id: int) -> tuple[L2Entry, bool]:
        """The entry, and whether another worker still holds the user's load lock."""
        entry_key, version_key, lock = _keys(user_id)
        try:
            async with self._redis(user_id).pipeline(transaction=False) as pipe:
                pipe.get(entry_key)
                pipe.get(version_key)
                pipe.exists(lock)
                raw, version, held = await pipe.execute()
        except REDIS_ERRORS:
            return UNREAD_ENTRY, False
        return _entry(raw, version), bool(held)

    async def read_many(self, user_ids: Sequence[int]) -> dict[int, L2Entry]:
        """Every user's entry, one MGET per shard, the shards in parallel."""
        by_shard: dict[str, list[int]] = defaultdict(list)
        for user_id in user_ids:
            by_shard[self.shard_of(user_id)].append(user_id)

        async def one_shard(shard: str, users: list[int]) -> dict[int, L2Entry]:
            keys = [k for u in users for k in _keys(u)[:2]]
            try:
                values = await self.shards.clients[shard].mget(keys)
            except REDIS_ERRORS as exc:
                _warnings.warn(f"l2:{shard}", "L2 read failed", shard=shard, error=repr(exc))
                return {u: UNREAD_ENTRY for u in users}
            return {
                user_id: _entry(values[2 * index], values[2 * index + 1])
                for index, user_id in enumerate(users)
            }

        results = await asyncio.gather(*(one_shard(s, u) for s, u in by_shard.items()))
        return {user_id: entry for part in results for user_id, entry in part.items()}

    async def store_many(
        self, bodies: dict[int, Body], seen: dict[int, L2Entry], *, unlock: bool
    ) -> None:
        """Write the loaded answers, one pipeline per shard, each a compare-and-set on the
        version read before the load (and, for a single-flight loader, the unlock). A shard
        that fails keeps what it had: the answers are still served, from the load."""
        now = time.time()
        by_shard: dict[str, list[tuple[int, str]]] = defaultdict(list)
        unlock_only: list[int] = []
        for user_id, body in bodies.items():
            version = seen[user_id].version
            if not has_history(body) and seen[user_id].body is None:
                # Not stored per id: an id without events costs no Redis memory (an entry that
                # exists, the user's events aged out, is overwritten as before).
                unlock_only.append(user_id)
            elif version is not UNREAD:
                by_shard[self.shard_of(user_id)].append((user_id, version))
        if unlock and unlock_only:
            await self.unlock(unlock_only)

        def args(user_id: int, version: str) -> tuple[str | bytes | int, ...]:
            value = orjson.dumps({"at": now, "body": bodies[user_id]})
            return (*_keys(user_id), version, value, self.keep_s, "1" if unlock else "0")

        async def one_shard(shard: str, users: list[tuple[int, str]]) -> None:
            client = self.shards.clients[shard]
            if len(users) == 1:
                # A single miss: the command itself, without a pipeline's own cost in the client.
                await client.eval(_STORE_IF_VERSION, 3, *args(*users[0]))
                return
            async with client.pipeline(transaction=False) as pipe:
                for user_id, version in users:
                    pipe.eval(_STORE_IF_VERSION, 3, *args(user_id, version))
                await pipe.execute()

        results = await asyncio.gather(
            *(one_shard(s, u) for s, u in by_shard.items()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, REDIS_ERRORS):
                raise result

    async def unlock(self, user_ids: Sequence[int]) -> None:
        for user_id in user_ids:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._redis(user_id).delete(_keys(user_id)[2])

    async def invalidate(self, user_id: int) -> None:
        """Bump the user's version and delete the entry; raises REDIS_ERRORS."""
        entry_key, version_key, _ = _keys(user_id)
        await self._redis(user_id).eval(_INVALIDATE, 2, entry_key, version_key, self.keep_s)
