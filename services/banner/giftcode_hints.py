"""What Redis holds about a campaign's gift codes: hints only, on the campaign's shard.

The candidates (a list of codes unclaimed when pushed, maybe taken since: MySQL checks), the
cache of confirmed bindings (visitor -> code; a binding never changes once committed, so an entry
can be old but never wrong) and the refill lock. A Redis fault here only costs its time budget:
each call answers "down" or logs and returns, and MySQL decides (giftcodes.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Literal

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from services.common.store_errors import REDIS_ERRORS
from services.common.throttled_log import ThrottledWarnings

log = logging.getLogger(__name__)
# A push fails for every mint and refill while a shard is down: one warning per shard per 10 s.
_warnings = ThrottledWarnings(log)
# Redis is a shortcut: a slow shard must not cost a claim more than this per command.
CACHE_TIMEOUT_S = 0.1
# Pushing a mint's codes as candidates, and a refill's: at most this, then MySQL finds them.
PUSH_TIMEOUT_S = 0.5
# Codes per RPUSH of a push.
PUSH_BATCH = 5000
# The refill lock's lifetime: a refill that found no codes keeps it until it expires, so a
# campaign out of codes costs one refill query per this, not one per claim.
REFILL_LOCK_MS = 1000

# One round trip: the visitor's cached binding, else the next candidate, else (the list is empty)
# whether this claim is the one to refill it. KEYS: holders, candidates, refill lock.
_NEXT_LUA = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then return {1, held} end
local code = redis.call('LPOP', KEYS[2])
if code then return {2, code} end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then return {3} end
return {0}
"""
Next = Literal["held", "candidate", "refill", "empty", "down"]
_NEXT_KINDS: dict[int, Next] = {1: "held", 2: "candidate", 3: "refill", 0: "empty"}


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def owner_key(campaign_id: int) -> str:
    """What the ring places: a campaign's gift-code keys live on this key's shard."""
    return f"giftcodes:{campaign_id}"


def holders_key(campaign_id: int) -> str:
    """The cache of confirmed bindings, visitor -> code (a hash)."""
    return f"{owner_key(campaign_id)}:holders"


def candidates_key(campaign_id: int) -> str:
    """Codes unclaimed when pushed (a list): hints for the fast claim, MySQL still decides."""
    return f"{owner_key(campaign_id)}:candidates"


def refill_key(campaign_id: int) -> str:
    """Held (with an expiry) by the one claim refilling the campaign's empty candidate list."""
    return f"{owner_key(campaign_id)}:refill"


def next_script(redis: Redis) -> AsyncScript:
    """The script `next_hint` runs: registered once, run on any shard's client."""
    return redis.register_script(_NEXT_LUA)


async def next_hint(
    script: AsyncScript, redis: Redis, campaign_id: int, visitor: str
) -> tuple[Next, str | None]:
    """The visitor's cached code, a candidate, the refill turn, nothing, or "down"."""
    keys = [holders_key(campaign_id), candidates_key(campaign_id), refill_key(campaign_id)]
    try:
        async with asyncio.timeout(CACHE_TIMEOUT_S):
            answer = await script(keys=keys, args=[visitor, REFILL_LOCK_MS], client=redis)
    except REDIS_ERRORS:
        return "down", None  # MySQL answers instead
    kind = _NEXT_KINDS[int(answer[0])]
    return kind, text(answer[1]) if len(answer) > 1 else None


async def push_candidates(shard: str, redis: Redis, campaign_id: int, codes: Sequence[str]) -> None:
    """Append candidates and release the refill lock (the campaign has codes again)."""
    try:
        async with asyncio.timeout(PUSH_TIMEOUT_S):
            pipe = redis.pipeline(transaction=False)
            for start in range(0, len(codes), PUSH_BATCH):
                pipe.rpush(candidates_key(campaign_id), *codes[start : start + PUSH_BATCH])
            pipe.delete(refill_key(campaign_id))
            await pipe.execute()
    except REDIS_ERRORS as exc:
        _warnings.warn(f"push:{shard}", "gift-code candidates not pushed", error=repr(exc))


async def drop_candidates(redis: Redis, campaign_id: int) -> None:
    try:
        async with asyncio.timeout(PUSH_TIMEOUT_S):
            await redis.delete(candidates_key(campaign_id))
    except REDIS_ERRORS as exc:
        log.debug("stale gift-code candidates not dropped", extra={"error": repr(exc)})


async def cache_binding(redis: Redis, campaign_id: int, visitor: str, code: str) -> None:
    try:
        async with asyncio.timeout(CACHE_TIMEOUT_S * 5):
            await redis.hset(holders_key(campaign_id), visitor, code)
    except REDIS_ERRORS as exc:
        log.debug("gift-code cache not written", extra={"error": repr(exc)})
