"""Campaign gift codes: minted by an admin, claimed once per visitor, never given twice.

MySQL alone decides who holds a code (docs/banner.md, "Gift codes"): a claim is one short
transaction that binds the visitor to an unclaimed row (`FOR UPDATE SKIP LOCKED`, so concurrent
claims take different rows instead of queueing on one), and `UNIQUE (campaign_id, visitor)` makes
a visitor's second, concurrent claim fail instead of taking a second code. A claim first reads the
visitor's recorded code, so asking again, after a lost answer or a 503, returns the same code.
Whatever dies between two steps, either the transaction commits (the visitor holds the code and
gets it on asking again) or it rolls back (the row stays unclaimed): no code is ever half-given.

Redis holds only a cache of confirmed bindings (visitor -> code, on the campaign's shard). A
binding never changes once committed, so an entry can be old but never wrong; the cache lets a
returning visitor get the code while MySQL is down, and a Redis fault only costs its time budget.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time

import aiomysql
from prometheus_client import Counter, Gauge
from pymysql.err import IntegrityError, OperationalError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.problems import DependencyUnavailable, Gone
from services.common.redis_shards import RedisShards

log = logging.getLogger(__name__)
CODE_BYTES = 10  # 80 bits: base32, 16 characters, not guessable
MYSQL_ERRORS = (aiomysql.Error, OSError, TimeoutError)
# A claim that MySQL has not confirmed within this is answered 503 (the gateway waits 15 s). It
# includes the wait for a pooled connection, which a burst of claims queues on.
CLAIM_TIMEOUT_S = 5.0
# A mint is one transaction of up to MAX_MINT rows: longer, still below the gateway's 15 s.
MINT_TIMEOUT_S = 10.0
# The cache is a shortcut: a slow shard must not cost a claim more than this.
CACHE_TIMEOUT_S = 0.1
# Victims of a deadlock or a lock wait timeout start the transaction again, this many times.
CLAIM_ATTEMPTS = 3
MINT_BATCH = 1000
# A collision of 80 random bits is not expected: codes lost to one are drawn again, in at most
# this many extra batches (the answer's "minted" says how many were made).
MINT_SPARE_BATCHES = 2
GAUGE_REFRESH_S = 5.0
_RETRYABLE = {1205, 1213}  # ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK

_PICK = "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL LIMIT 1 FOR UPDATE"
_HELD = "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor = %s"
_AVAILABLE = "SELECT COUNT(*) FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL"

AVAILABLE = Gauge(
    "banner_gift_codes_available",
    "Unclaimed gift codes of a campaign, as last counted by this worker",
    ["campaign"],
    multiprocess_mode="livemostrecent",
)
CLAIMS = Counter("banner_gift_code_claims", "Gift-code claims by result", ["result"])


def new_code() -> str:
    return base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().rstrip("=")


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def owner_key(campaign_id: int) -> str:
    """What the ring places: a campaign's gift-code keys live on this key's shard."""
    return f"giftcodes:{campaign_id}"


def holders_key(campaign_id: int) -> str:
    """The cache of confirmed bindings, visitor -> code (a hash)."""
    return f"{owner_key(campaign_id)}:holders"


class GiftCodes:
    def __init__(self, shards: RedisShards, pool: aiomysql.Pool) -> None:
        self.shards = shards
        self.pool = pool
        self._counted_at: dict[int, float] = {}
        self._cache_writes: set[asyncio.Task[None]] = set()

    def _redis(self, campaign_id: int) -> Redis:
        return self.shards.owner(owner_key(campaign_id))[1]

    async def mint(self, campaign_id: int, count: int) -> tuple[int, int]:
        """Create `count` new codes; returns (minted, codes now unclaimed)."""
        try:
            async with asyncio.timeout(MINT_TIMEOUT_S):
                minted, available = await self._mint(campaign_id, count)
        except MYSQL_ERRORS as exc:
            # One transaction: without its answer, either every code was added or none was.
            raise DependencyUnavailable(
                "MySQL did not confirm the mint: it added all the codes or none"
            ) from exc
        AVAILABLE.labels(str(campaign_id)).set(available)
        self._counted_at[campaign_id] = time.monotonic()
        return minted, available

    async def _mint(self, campaign_id: int, count: int) -> tuple[int, int]:
        minted = 0
        async with self.pool.acquire() as conn:
            # One transaction (one log flush): all the codes are claimable, or none is. Should
            # anything fail, the pool closes a connection still in a transaction: it rolls back.
            await conn.begin()
            async with conn.cursor() as cur:
                for _ in range(-(-count // MINT_BATCH) + MINT_SPARE_BATCHES):
                    if minted >= count:
                        break
                    batch = [new_code() for _ in range(min(count - minted, MINT_BATCH))]
                    # INSERT IGNORE: a colliding code is simply not minted; rowcount says so.
                    await cur.executemany(
                        "INSERT IGNORE INTO gift_codes (code, campaign_id) VALUES (%s, %s)",
                        [(code, campaign_id) for code in batch],
                    )
                    minted += cur.rowcount
                await cur.execute(_AVAILABLE, (campaign_id,))
                row = await cur.fetchone()
            await conn.commit()
        return minted, int(row[0])

    async def claim(self, campaign_id: int, visitor: str) -> str:
        cached = await self._cached(campaign_id, visitor)
        if cached is not None:
            return cached
        try:
            async with asyncio.timeout(CLAIM_TIMEOUT_S):
                code = await self._claim(campaign_id, visitor)
        except MYSQL_ERRORS as exc:
            CLAIMS.labels("unconfirmed").inc()
            # The commit may have happened unseen: asking again returns the code it recorded.
            raise DependencyUnavailable("MySQL did not confirm the claim; ask again") from exc
        if code is None:
            CLAIMS.labels("pool_empty").inc()
            AVAILABLE.labels(str(campaign_id)).set(0)
            raise Gone(f"campaign {campaign_id} has no gift codes left")
        CLAIMS.labels("claimed").inc()
        self._cache(campaign_id, visitor, code)
        return code

    async def _claim(self, campaign_id: int, visitor: str) -> str | None:
        """The visitor's code (recorded before, or bound now), None when none is left."""
        async with self.pool.acquire() as conn:
            held = await _held(conn, campaign_id, visitor)
            if held is not None:
                return held
            for _ in range(CLAIM_ATTEMPTS):
                try:
                    return await self._bind(conn, campaign_id, visitor)
                except IntegrityError:
                    # one_per_visitor: the visitor's other request (a retry) committed first.
                    await conn.rollback()
                    held = await _held(conn, campaign_id, visitor)
                    if held is not None:
                        return held
                except OperationalError as exc:
                    if exc.args[0] not in _RETRYABLE:
                        raise
                    await conn.rollback()
        raise TimeoutError(f"no claim committed after {CLAIM_ATTEMPTS} attempts")

    async def _bind(self, conn: aiomysql.Connection, campaign_id: int, visitor: str) -> str | None:
        async with conn.cursor() as cur:
            # REPEATABLE READ (the default) measured as fast as READ COMMITTED here, and one round
            # trip shorter; a deadlock victim starts again (_claim).
            await conn.begin()
            # Rows other claims hold are skipped, so claims run side by side...
            await cur.execute(_PICK + " SKIP LOCKED", (campaign_id,))
            row = await cur.fetchone()
            if row is None:
                # ... unless every unclaimed row is held: wait for those claims, as one of them
                # may roll back; if they all commit, nothing is left and the answer is 410.
                await cur.execute(_PICK, (campaign_id,))
                row = await cur.fetchone()
            if row is None:
                await conn.rollback()
                return None
            code = str(row[0])
            await cur.execute(
                "UPDATE gift_codes SET visitor = %s, claimed_at = NOW(6) WHERE code = %s",
                (visitor, code),
            )
            available = await self._count_if_due(cur, campaign_id)
            await conn.commit()
        if available is not None:
            AVAILABLE.labels(str(campaign_id)).set(available)
        return code

    async def _count_if_due(self, cur: aiomysql.Cursor, campaign_id: int) -> int | None:
        """The gauge's count, at most every GAUGE_REFRESH_S per campaign: a range count."""
        now = time.monotonic()
        if now - self._counted_at.get(campaign_id, -GAUGE_REFRESH_S) < GAUGE_REFRESH_S:
            return None
        self._counted_at[campaign_id] = now
        await cur.execute(_AVAILABLE, (campaign_id,))
        row = await cur.fetchone()
        return int(row[0])

    async def _cached(self, campaign_id: int, visitor: str) -> str | None:
        try:
            async with asyncio.timeout(CACHE_TIMEOUT_S):
                held = await self._redis(campaign_id).hget(holders_key(campaign_id), visitor)
        except (RedisError, OSError, TimeoutError):
            return None  # MySQL answers instead
        return text(held) if held is not None else None

    def _cache(self, campaign_id: int, visitor: str, code: str) -> None:
        """Remember a committed binding, without making the answer wait for Redis."""

        async def write() -> None:
            try:
                async with asyncio.timeout(CACHE_TIMEOUT_S * 5):
                    await self._redis(campaign_id).hset(holders_key(campaign_id), visitor, code)
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("gift-code cache not written", extra={"error": repr(exc)})

        task = asyncio.create_task(write())
        self._cache_writes.add(task)  # a task nobody references may be collected mid-flight
        task.add_done_callback(self._cache_writes.discard)


async def _held(conn: aiomysql.Connection, campaign_id: int, visitor: str) -> str | None:
    async with conn.cursor() as cur:
        await cur.execute(_HELD, (campaign_id, visitor))
        row = await cur.fetchone()
    return str(row[0]) if row else None
