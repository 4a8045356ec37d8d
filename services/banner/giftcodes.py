"""Campaign gift codes: minted by an admin, claimed once per visitor, never given twice.

MySQL is the record: a code is a primary key, and (campaign, visitor) is unique, so even a
confused Redis cannot make the database hand one code to two visitors or two codes to one. Redis
holds the campaign's pool of unclaimed codes and the visitor -> code map on the campaign's shard,
and one Lua script pops a code and binds it to the visitor atomically, so concurrent claims never
race. The claim is written to MySQL before the answer; if that write fails the code goes back to
the pool and the visitor gets a 503, never a code that is not recorded.
"""

from __future__ import annotations

import base64
import secrets

import aiomysql
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.problems import DependencyUnavailable, Gone
from services.common.redis_shards import RedisShards

CODE_BYTES = 10  # 80 bits: base32, 16 characters, not guessable

_CLAIM = """
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  return held
end
local code = redis.call('LPOP', KEYS[1])
if not code then
  return false
end
redis.call('HSET', KEYS[2], ARGV[1], code)
return code
"""
# Undo a claim whose MySQL record failed: only if the visitor still holds exactly that code.
_GIVE_BACK = """
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('LPUSH', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


AVAILABLE = Gauge(
    "banner_gift_codes_available",
    "Unclaimed gift codes in a campaign's pool, as last seen by this worker",
    ["campaign"],
    multiprocess_mode="livemostrecent",
)
CLAIMS = Counter("banner_gift_code_claims", "Gift-code claims by result", ["result"])


def new_code() -> str:
    return base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().rstrip("=")


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def owner_key(campaign_id: int) -> str:
    """What the ring places: a campaign's pool and claim map live on this key's shard."""
    return f"giftcodes:{campaign_id}"


def pool_keys(campaign_id: int) -> list[str]:
    """The campaign's pool of unclaimed codes (a list) and its visitor -> code map (a hash)."""
    return [f"{owner_key(campaign_id)}:pool", f"{owner_key(campaign_id)}:claims"]


class GiftCodes:
    def __init__(self, shards: RedisShards, pool: aiomysql.Pool) -> None:
        self.shards = shards
        self.pool = pool

    def _redis(self, campaign_id: int) -> Redis:
        return self.shards.owner(owner_key(campaign_id))[1]

    async def mint(self, campaign_id: int, count: int) -> tuple[int, int]:
        """Create `count` new codes; returns (minted, codes now available in the pool)."""
        minted: list[str] = []
        async with self.pool.acquire() as conn:
            await conn.begin()  # one commit (one log flush) for the whole mint
            async with conn.cursor() as cur:
                while len(minted) < count:
                    code = new_code()
                    # A collision of 80 random bits is not expected; INSERT IGNORE makes it
                    # harmless (the colliding code is not minted and another one is drawn).
                    await cur.execute(
                        "INSERT IGNORE INTO gift_codes (code, campaign_id) VALUES (%s, %s)",
                        (code, campaign_id),
                    )
                    if cur.rowcount == 1:
                        minted.append(code)
            await conn.commit()
        redis = self._redis(campaign_id)
        pool_key = pool_keys(campaign_id)[0]
        try:
            async with redis.pipeline(transaction=True) as pipe:  # all codes pooled, or none
                for start in range(0, len(minted), 1000):
                    pipe.rpush(pool_key, *minted[start : start + 1000])
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Unpooled codes could never be claimed: take them back out of the record.
            await self._forget(minted)
            raise DependencyUnavailable("the codes could not be pooled; none was minted") from exc
        available = int(await redis.llen(pool_key))
        AVAILABLE.labels(str(campaign_id)).set(available)
        return len(minted), available

    async def claim(self, campaign_id: int, visitor: str) -> str:
        redis = self._redis(campaign_id)
        keys = pool_keys(campaign_id)
        held = await redis.hget(keys[1], visitor)
        if held is not None:
            return text(held)
        # Redis may have lost the map (a restored shard): MySQL still knows.
        recorded = await self._recorded(campaign_id, visitor)
        if recorded is not None:
            await redis.hset(keys[1], visitor, recorded)
            return recorded
        popped = await redis.eval(_CLAIM, 2, *keys, visitor)
        if popped is None:
            CLAIMS.labels("pool_empty").inc()
            AVAILABLE.labels(str(campaign_id)).set(0)
            raise Gone(f"campaign {campaign_id} has no gift codes left")
        code = text(popped)
        try:
            async with self.pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(
                    "UPDATE gift_codes SET visitor = %s, claimed_at = NOW(6)"
                    " WHERE code = %s AND campaign_id = %s AND visitor IS NULL",
                    (visitor, code, campaign_id),
                )
                recorded_now = cur.rowcount == 1
        except (aiomysql.Error, OSError, TimeoutError) as exc:
            await redis.eval(_GIVE_BACK, 2, *keys, visitor, code)
            CLAIMS.labels("not_recorded").inc()
            raise DependencyUnavailable("the claim could not be recorded; try again") from exc
        if not recorded_now:
            # The database says this code is taken (or the visitor holds another): believe it.
            await redis.hdel(keys[1], visitor)
            recorded = await self._recorded(campaign_id, visitor)
            if recorded is not None:
                await redis.hset(keys[1], visitor, recorded)
                return recorded
            return await self.claim(campaign_id, visitor)
        CLAIMS.labels("claimed").inc()
        AVAILABLE.labels(str(campaign_id)).set(int(await redis.llen(keys[0])))
        return str(code)

    async def _forget(self, codes: list[str]) -> None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            for start in range(0, len(codes), 1000):
                chunk = codes[start : start + 1000]
                marks = ", ".join(["%s"] * len(chunk))
                await cur.execute(
                    f"DELETE FROM gift_codes WHERE visitor IS NULL AND code IN ({marks})", chunk
                )

    async def _recorded(self, campaign_id: int, visitor: str) -> str | None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor = %s",
                (campaign_id, visitor),
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None
