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
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
# A claim that MySQL has not confirmed within this is answered 503 (the gateway waits 15 s). It
# includes the wait for a pooled connection, which a burst of claims queues on.
CLAIM_TIMEOUT_S = 5.0
# A mint is one transaction of up to MAX_MINT rows: longer, still below the gateway's 15 s.
MINT_TIMEOUT_S = 10.0
# Redis is a shortcut: a slow shard must not cost a claim more than this per command.
CACHE_TIMEOUT_S = 0.1
# Pushing a mint's codes as candidates, and a refill's: at most this, then MySQL finds them.
PUSH_TIMEOUT_S = 0.5
# Candidates tried per claim; all taken (a list of stale codes): the list is dropped, and the
# claim binds in a transaction instead.
CANDIDATE_ATTEMPTS = 3
# An empty list is refilled from MySQL with at most this many unclaimed codes, by one claim at a
# time per campaign (a Redis lock); a refill that found none keeps the lock until it expires, so
# a campaign out of codes costs one refill query per REFILL_LOCK_MS, not one per claim.
REFILL_BATCH = 1000
REFILL_LOCK_MS = 1000
REFILL_TIMEOUT_S = 2.0
# Victims of a deadlock or a lock wait timeout start the transaction again, this many times.
CLAIM_ATTEMPTS = 3
MINT_BATCH = 5000
# A mint's Idempotency-Key is remembered this long (a retry after a lost answer comes within
# minutes); each keyed mint then deletes at most this many expired keys, so the table holds about
# one day of mints.
MINT_KEY_RETENTION_S = 24 * 3600
MINT_KEY_PURGE_BATCH = 1000
# A collision of 80 random bits is not expected: codes lost to one are drawn again, in at most
# this many extra batches (the answer's "minted" says how many were made).
MINT_SPARE_BATCHES = 2
GAUGE_REFRESH_S = 5.0
_RETRYABLE = {1205, 1213}  # ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK

_PICK = "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL LIMIT 1 FOR UPDATE"
_INSERT = "INSERT IGNORE INTO gift_codes (code, campaign_id) VALUES (%s, %s)"
_CLAIM_KEY = (
    "INSERT INTO gift_code_mints (campaign_id, idem_key, requested, minted, available)"
    " VALUES (%s, %s, %s, 0, 0)"
)
_KEY_RESULT = (
    "UPDATE gift_code_mints SET minted = %s, available = %s"
    " WHERE campaign_id = %s AND idem_key = %s"
)
_MINTED = (
    "SELECT requested, minted, available FROM gift_code_mints"
    " WHERE campaign_id = %s AND idem_key = %s"
)
_FORGET_KEYS = (
    "DELETE FROM gift_code_mints WHERE created_at < NOW(6) - INTERVAL %s SECOND"
    " ORDER BY created_at LIMIT %s"
)
_HELD = "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor = %s"
_AVAILABLE = "SELECT COUNT(*) FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL"
_TAKE = (
    "UPDATE gift_codes SET visitor = %s, claimed_at = NOW(6)"
    " WHERE code = %s AND campaign_id = %s AND visitor IS NULL"
)
# Candidates come from the top of the codes (pushed highest first), the transaction's SKIP LOCKED
# takes the first unclaimed from the bottom (index order): the two meet only at the last codes.
_UNCLAIMED = (
    "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL"
    " ORDER BY code DESC LIMIT %s"
)

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

AVAILABLE = Gauge(
    "banner_gift_codes_available",
    "Unclaimed gift codes of a campaign, as last counted by this worker",
    ["campaign"],
    multiprocess_mode="livemostrecent",
)
CLAIMS = Counter("banner_gift_code_claims", "Gift-code claims by result", ["result"])
CLAIM_PATHS = Counter(
    "banner_gift_code_claim_paths",
    "Gift-code claims answered, by how: cache, candidate, transaction",
    ["path"],
)


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


def candidates_key(campaign_id: int) -> str:
    """Codes unclaimed when pushed (a list): hints for the fast claim, MySQL still decides."""
    return f"{owner_key(campaign_id)}:candidates"


def refill_key(campaign_id: int) -> str:
    """Held (with an expiry) by the one claim refilling the campaign's empty candidate list."""
    return f"{owner_key(campaign_id)}:refill"


@dataclass(frozen=True)
class Minted:
    """A mint's answer: `requested` is the count the mint (or, replayed, the key's first mint)
    asked for."""

    requested: int
    minted: int
    available: int
    replayed: bool = False


@dataclass
class _Pending:
    task: asyncio.Future[int]
    batch: list[str]


class GiftCodes:
    def __init__(self, shards: RedisShards, pool: aiomysql.Pool) -> None:
        self.shards = shards
        self.pool = pool
        self._counted_at: dict[int, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._next_script = next(iter(shards.clients.values())).register_script(_NEXT_LUA)

    async def close(self) -> None:
        """Let the background work (cache writes, refills: each bounded) finish, before the
        Redis and MySQL pools close."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=REFILL_TIMEOUT_S + PUSH_TIMEOUT_S)

    def _redis(self, campaign_id: int) -> Redis:
        return self.shards.owner(owner_key(campaign_id))[1]

    async def mint(self, campaign_id: int, count: int, *, key: str | None = None) -> Minted:
        """Create `count` new codes, at most once per `key` (an Idempotency-Key, scoped to the
        campaign): a mint whose key MySQL recorded answers what that first mint answered, with
        `replayed` set and `requested` the count it was for (the caller compares)."""
        try:
            async with asyncio.timeout(MINT_TIMEOUT_S):
                result, codes = await self._mint(campaign_id, count, key)
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
            self._spawn(self._forget_old_keys())
        return result

    async def _mint(
        self, campaign_id: int, count: int, key: str | None
    ) -> tuple[Minted, list[str]]:
        async with self.pool.acquire() as conn:
            # One transaction (one log flush): all the codes are claimable, or none is, and the
            # key is recorded with them. Should anything fail, the pool closes a connection still
            # in a transaction: it rolls back.
            await conn.begin()
            async with conn.cursor() as cur:
                if key is not None:
                    try:
                        # First: a concurrent mint with the same key waits here on this row's
                        # lock until this one commits (then replays it) or rolls back.
                        await cur.execute(_CLAIM_KEY, (campaign_id, key, count))
                    except IntegrityError:
                        await conn.rollback()
                        await cur.execute(_MINTED, (campaign_id, key))
                        row = await cur.fetchone()
                        if row is None:  # forgotten in between (past its retention): mint anew
                            raise OperationalError(1213, "the key's mint vanished") from None
                        requested, was_minted, available = map(int, row)
                        return Minted(requested, was_minted, available, replayed=True), []
                minted, drawn = await _insert_pipelined(cur, campaign_id, count)
                await cur.execute(_AVAILABLE, (campaign_id,))
                row = await cur.fetchone()
                available = int(row[0])
                if key is not None:
                    await cur.execute(_KEY_RESULT, (minted, available, campaign_id, key))
            await conn.commit()
        return Minted(count, minted, available), drawn

    async def _forget_old_keys(self) -> None:
        """Mint keys are kept MINT_KEY_RETENTION_S: each keyed mint deletes a bounded batch of
        older ones, in its own autocommit statement (not under the mint's locks)."""
        try:
            async with asyncio.timeout(PUSH_TIMEOUT_S * 4):
                async with self.pool.acquire() as conn, conn.cursor() as cur:
                    await cur.execute(_FORGET_KEYS, (MINT_KEY_RETENTION_S, MINT_KEY_PURGE_BATCH))
        except MYSQL_ERRORS as exc:
            log.debug("old mint keys not purged", extra={"error": repr(exc)})

    async def _push(self, campaign_id: int, codes: Sequence[str]) -> None:
        """Append candidates and release the refill lock (the campaign has codes again)."""
        try:
            async with asyncio.timeout(PUSH_TIMEOUT_S):
                pipe = self._redis(campaign_id).pipeline(transaction=False)
                for start in range(0, len(codes), MINT_BATCH):
                    pipe.rpush(candidates_key(campaign_id), *codes[start : start + MINT_BATCH])
                pipe.delete(refill_key(campaign_id))
                await pipe.execute()
        except REDIS_ERRORS as exc:
            log.warning("gift-code candidates not pushed", extra={"error": repr(exc)})

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
        self._cache(campaign_id, visitor, code)
        return code

    async def _claim(self, campaign_id: int, visitor: str) -> tuple[str | None, str]:
        """The visitor's code (cached, recorded before, or bound now) and how it was found; None
        when none is left."""
        for _ in range(CANDIDATE_ATTEMPTS):
            kind, value = await self._next(campaign_id, visitor)
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
            self._spawn(self._drop_candidates(campaign_id))
        return await self._claim_in_transaction(campaign_id, visitor), "transaction"

    async def _next(self, campaign_id: int, visitor: str) -> tuple[Next, str | None]:
        keys = [holders_key(campaign_id), candidates_key(campaign_id), refill_key(campaign_id)]
        try:
            async with asyncio.timeout(CACHE_TIMEOUT_S):
                answer = await self._next_script(
                    keys=keys, args=[visitor, REFILL_LOCK_MS], client=self._redis(campaign_id)
                )
        except REDIS_ERRORS:
            return "down", None  # MySQL answers instead
        kind = _NEXT_KINDS[int(answer[0])]
        return kind, text(answer[1]) if len(answer) > 1 else None

    async def _take(self, campaign_id: int, visitor: str, code: str) -> str | None:
        """Bind the candidate in one autocommit UPDATE: the visitor's code, or None (taken)."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                taken = await cur.execute(_TAKE, (visitor, code, campaign_id))
            except IntegrityError:
                # one_per_visitor: the visitor holds a code already (asked again after a lost
                # answer, or a concurrent request committed first). The candidate stays unused.
                return await _held(conn, campaign_id, visitor)
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
                async with self.pool.acquire() as conn, conn.cursor() as cur:
                    await cur.execute(_UNCLAIMED, (campaign_id, REFILL_BATCH))
                    codes = [str(row[0]) for row in await cur.fetchall()]
        except MYSQL_ERRORS as exc:
            log.debug("gift-code candidates not refilled", extra={"error": repr(exc)})
            return
        if codes:
            await self._push(campaign_id, codes)
        # None left: the lock stays until it expires (a mint releases it at once).

    async def _drop_candidates(self, campaign_id: int) -> None:
        try:
            async with asyncio.timeout(PUSH_TIMEOUT_S):
                await self._redis(campaign_id).delete(candidates_key(campaign_id))
        except REDIS_ERRORS as exc:
            log.debug("stale gift-code candidates not dropped", extra={"error": repr(exc)})

    async def _claim_in_transaction(self, campaign_id: int, visitor: str) -> str | None:
        """Without a candidate: the visitor's recorded code, or bind one now in a transaction."""
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
            # trip shorter; a deadlock victim starts again (_claim_in_transaction).
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

    def _cache(self, campaign_id: int, visitor: str, code: str) -> None:
        """Remember a committed binding, without making the answer wait for Redis."""

        async def write() -> None:
            try:
                async with asyncio.timeout(CACHE_TIMEOUT_S * 5):
                    await self._redis(campaign_id).hset(holders_key(campaign_id), visitor, code)
            except REDIS_ERRORS as exc:
                log.debug("gift-code cache not written", extra={"error": repr(exc)})

        self._spawn(write())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run in the background: the answer never waits for it."""
        task = asyncio.create_task(work)
        self._background.add(task)  # a task nobody references may be collected mid-flight
        task.add_done_callback(self._background.discard)


async def _insert_pipelined(
    cur: aiomysql.Cursor, campaign_id: int, count: int
) -> tuple[int, list[str]]:
    """Insert `count` new codes in multi-row INSERTs of MINT_BATCH, pipelined with drawing them:
    while the server inserts one batch, the next is drawn. Returns (inserted, every code drawn)."""
    minted, drawn = 0, []
    in_flight: _Pending | None = None
    owner = asyncio.current_task()
    assert owner is not None
    try:
        for _ in range(-(-count // MINT_BATCH) + MINT_SPARE_BATCHES):
            wanted = count - minted - (len(in_flight.batch) if in_flight else 0)
            batch = [new_code() for _ in range(min(wanted, MINT_BATCH))]
            if in_flight is not None:
                minted += await in_flight.task
                in_flight = None
            if not batch:
                if minted >= count:
                    break
                continue  # the batch in flight lost codes to collisions: draw them again
            drawn += batch
            # Named after the mint's task: a step of the mint (tests/banner/step_faults.py).
            name = f"{owner.get_name()}/mint-insert"
            in_flight = _Pending(
                asyncio.create_task(_insert(cur, campaign_id, batch), name=name), batch
            )
            await asyncio.sleep(0)  # it sends its INSERT; the next batch is drawn meanwhile
        if in_flight is not None:
            minted += await in_flight.task
            in_flight = None
    finally:
        if in_flight is not None:  # cancelled or failed: the transaction rolls back
            in_flight.task.cancel()
    return minted, drawn


async def _insert(cur: aiomysql.Cursor, campaign_id: int, batch: list[str]) -> int:
    # INSERT IGNORE: a colliding code is simply not minted; rowcount says so.
    await cur.executemany(_INSERT, [(code, campaign_id) for code in batch])
    return int(cur.rowcount)


async def _held(conn: aiomysql.Connection, campaign_id: int, visitor: str) -> str | None:
    async with conn.cursor() as cur:
        await cur.execute(_HELD, (campaign_id, visitor))
        row = await cur.fetchone()
    return str(row[0]) if row else None
