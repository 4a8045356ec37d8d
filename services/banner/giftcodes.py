"""Campaign gift codes: minted by an admin, claimed once per visitor, never given twice.

MySQL alone decides who holds a code (docs/banner.md, "Gift codes"). The fast claim takes a
candidate code from a Redis list and binds it with one autocommit
`UPDATE ... WHERE code AND visitor IS NULL`: one affected row is the visitor's code, none means
the candidate was taken (try the next, a bounded number of times), and `UNIQUE (campaign_id,
visitor)` refusing the row means the visitor holds a code already: read it. When Redis fails or
the candidates run out, the claim is one short transaction that binds an unclaimed row
(`FOR UPDATE SKIP LOCKED`). Either way, whatever dies between two steps, the binding committed
(the visitor gets it on asking again) or it did not (the row stays unclaimed): no code is ever
half-given, and a candidate popped but not used costs nothing, since MySQL still has it unclaimed.

Redis holds only hints, on the campaign's shard: the candidates (unclaimed when pushed, maybe
taken since: MySQL checks) and a cache of confirmed bindings (visitor -> code; a binding never
changes once committed, so an entry can be old but never wrong; it lets a returning visitor get
the code while MySQL is down). A Redis fault only costs its time budget.

Here: the claim and the mint's bookkeeping. The mint's transaction is minting.py, the Redis hints
giftcode_hints.py, the statements store.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import aiomysql
from pymysql.err import IntegrityError, OperationalError
from redis.asyncio import Redis

from services.banner import giftcode_hints as hints
from services.banner import minting, store
from services.banner.metrics import AVAILABLE, CLAIM_PATHS, CLAIMS
from services.banner.minting import Minted
from services.common.problems import DependencyUnavailable, Gone
from services.common.redis_shards import RedisShards
from services.common.store_errors import MYSQL_ERRORS

log = logging.getLogger(__name__)
# A claim that MySQL has not confirmed within this is answered 503 (the gateway waits 15 s). It
# includes the wait for a pooled connection, which a burst of claims queues on.
CLAIM_TIMEOUT_S = 5.0
# A mint is one transaction of up to MAX_MINT rows: longer, still below the gateway's 15 s.
MINT_TIMEOUT_S = 10.0
# Candidates tried per claim; all taken (a list of stale codes): the list is dropped, and the
# claim binds in a transaction instead.
CANDIDATE_ATTEMPTS = 3
# An empty list is refilled from MySQL with at most this many unclaimed codes, by one claim at a
# time per campaign (the refill lock, giftcode_hints.REFILL_LOCK_MS).
REFILL_BATCH = 1000
REFILL_TIMEOUT_S = 2.0
# Victims of a deadlock or a lock wait timeout start the transaction again, this many times.
CLAIM_ATTEMPTS = 3
GAUGE_REFRESH_S = 5.0
_RETRYABLE = {1205, 1213}  # ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK


class GiftCodes:
    def __init__(self, shards: RedisShards, pool: aiomysql.Pool) -> None:
        self.shards = shards
        self.pool = pool
        self._counted_at: dict[int, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._next_script = hints.next_script(next(iter(shards.clients.values())))

    async def close(self) -> None:
        """Let the background work (cache writes, refills: each bounded) finish, before the
        Redis and MySQL pools close."""
        if self._background:
            timeout = REFILL_TIMEOUT_S + hints.PUSH_TIMEOUT_S
            await asyncio.wait(set(self._background), timeout=timeout)

    def _redis(self, campaign_id: int) -> Redis:
        return self.shards.owner(hints.owner_key(campaign_id))[1]

    async def mint(self, campaign_id: int, count: int, *, key: str | None = None) -> Minted:
        """Create `count` new codes, at most once per `key` (an Idempotency-Key, scoped to the
        campaign): a mint whose key MySQL recorded answers what that first mint answered, with
        `replayed` set and `requested` the count it was for (the caller compares)."""
        try:
            async with asyncio.timeout(MINT_TIMEOUT_S):
                result, codes = await minting.mint_codes(self.pool, campaign_id, count, key)
        except MYSQL_ERRORS as exc:
            # One transaction, key and codes together: without its answer, either all of them
            # were added or none was; the same key again finds out which, and mints at most once.
            raise DependencyUnavailable(
                "MySQL did not confirm the mint: it added all the codes or none"
                + ("; retry with the same Idempotency-Key" if key else "")
            ) from exc
        if result.replayed:
            return result
        AVAILABLE.labels(str(campaign_id)).set(result.available)
        self._counted_at[campaign_id] = time.monotonic()
        # Committed: offer them to the fast claim. A code lost to a collision is offered too and
        # found taken (or of another campaign) by the claim's UPDATE; a push that fails leaves
        # them to the refill and the transaction, which read MySQL.
        codes.sort(reverse=True)
        await self._push(campaign_id, codes)
        if key is not None:
            self._spawn(minting.forget_old_keys(self.pool))
        return result

    async def _push(self, campaign_id: int, codes: Sequence[str]) -> None:
        shard, redis = self.shards.owner(hints.owner_key(campaign_id))
        await hints.push_candidates(shard, redis, campaign_id, codes)

    async def claim(self, campaign_id: int, visitor: str) -> str:
        try:
            async with asyncio.timeout(CLAIM_TIMEOUT_S):
                code, path = await self._claim(campaign_id, visitor)
        except MYSQL_ERRORS as exc:
            CLAIMS.labels("unconfirmed").inc()
            # The commit may have happened unseen: asking again returns the code it recorded.
            raise DependencyUnavailable("MySQL did not confirm the claim; ask again") from exc
        if code is None:
            CLAIMS.labels("pool_empty").inc()
            AVAILABLE.labels(str(campaign_id)).set(0)
            raise Gone(f"campaign {campaign_id} has no gift codes left")
        CLAIM_PATHS.labels(path).inc()
        if path == "cache":
            return code
        CLAIMS.labels("claimed").inc()
        # Remember the committed binding, without making the answer wait for Redis.
        self._spawn(hints.cache_binding(self._redis(campaign_id), campaign_id, visitor, code))
        return code

    async def _claim(self, campaign_id: int, visitor: str) -> tuple[str | None, str]:
        """The visitor's code (cached, recorded before, or bound now) and how it was found; None
        when none is left."""
        for _ in range(CANDIDATE_ATTEMPTS):
            kind, value = await hints.next_hint(
                self._next_script, self._redis(campaign_id), campaign_id, visitor
            )
            if kind == "held":
                return value, "cache"
            if kind == "refill":
                self._spawn(self._refill(campaign_id))
            if kind != "candidate":
                break
            code = await self._take(campaign_id, visitor, str(value))
            if code is not None:
                return code, "candidate"
        else:
            # Every candidate tried was taken: the list is stale (a shard restored from an old
            # snapshot, a refill racing with claims). Dropped, the next claim refills it.
            self._spawn(hints.drop_candidates(self._redis(campaign_id), campaign_id))
        return await self._claim_in_transaction(campaign_id, visitor), "transaction"

    async def _take(self, campaign_id: int, visitor: str, code: str) -> str | None:
        """Bind the candidate in one autocommit UPDATE: the visitor's code, or None (taken)."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                taken = await store.take_code(cur, campaign_id, visitor, code)
            except IntegrityError:
                # one_per_visitor: the visitor holds a code already (asked again after a lost
                # answer, or a concurrent request committed first). The candidate stays unused.
                return await store.held_code(conn, campaign_id, visitor)
            except OperationalError as exc:
                if exc.args[0] not in _RETRYABLE:
                    raise
                return None  # the statement was rolled back: try another
            if not taken:
                return None
            available = await self._count_if_due(cur, campaign_id)
        if available is not None:
            AVAILABLE.labels(str(campaign_id)).set(available)
        return code

    async def _refill(self, campaign_id: int) -> None:
        """Push up to REFILL_BATCH unclaimed codes (this claim holds the refill lock)."""
        try:
            async with asyncio.timeout(REFILL_TIMEOUT_S):
                codes = await store.unclaimed_codes(self.pool, campaign_id, REFILL_BATCH)
        except MYSQL_ERRORS as exc:
            log.debug("gift-code candidates not refilled", extra={"error": repr(exc)})
            return
        if codes:
            await self._push(campaign_id, codes)
        # None left: the lock stays until it expires (a mint releases it at once).

    async def _claim_in_transaction(self, campaign_id: int, visitor: str) -> str | None:
        """Without a candidate: the visitor's recorded code, or bind one now in a transaction."""
        async with self.pool.acquire() as conn:
            held = await store.held_code(conn, campaign_id, visitor)
            if held is not None:
                return held
            for _ in range(CLAIM_ATTEMPTS):
                try:
                    return await self._bind(conn, campaign_id, visitor)
                except IntegrityError:
                    # one_per_visitor: the visitor's other request (a retry) committed first.
                    await conn.rollback()
                    held = await store.held_code(conn, campaign_id, visitor)
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
            # trip shorter; a deadlock victim starts again (_claim_in_transaction).
            await conn.begin()
            # Rows other claims hold are skipped, so claims run side by side...
            code = await store.pick_unclaimed(cur, campaign_id, skip_locked=True)
            if code is None:
                # ... unless every unclaimed row is held: wait for those claims, as one of them
                # may roll back; if they all commit, nothing is left and the answer is 410.
                code = await store.pick_unclaimed(cur, campaign_id, skip_locked=False)
            if code is None:
                await conn.rollback()
                return None
            await store.bind_code(cur, visitor, code)
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
        return await store.count_available(cur, campaign_id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run in the background: the answer never waits for it."""
        task = asyncio.create_task(work)
        self._background.add(task)  # a task nobody references may be collected mid-flight
        task.add_done_callback(self._background.discard)
