"""Redis and MySQL access of the counter: applying batches exactly once, reading counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import aiomysql
from pymysql.constants.ER import DUP_ENTRY
from pymysql.err import IntegrityError
from redis.asyncio import Redis

from services.counter.buffer import Batch
from services.counter.pages import visits_key

# KEYS[1] = this process's marker, KEYS[2..] = page keys; ARGV[1] = batch seq,
# ARGV[2] = marker TTL in seconds, ARGV[3..] = deltas in the order of the keys.
_APPLY = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= last then
  return 0
end
for i = 2, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[i + 1])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
# A marker outlives any retry of its process's batches by far; it then expires by itself.
MARKER_TTL_S = 7 * 24 * 3600


class ShardStore:
    def __init__(self, name: str, client: Redis, writer_id: str) -> None:
        self.name = name
        self.client = client
        self.marker = f"counter:applied:{writer_id}"
        self._apply = client.register_script(_APPLY)

    async def apply(self, batch: Batch) -> bool:
        """Apply the batch; False when an earlier attempt had applied it already."""
        keys = [self.marker, *(visits_key(page) for page in batch.deltas)]
        args = [batch.seq, MARKER_TTL_S, *batch.deltas.values()]
        return int(await self._apply(keys=keys, args=args)) == 1

    async def read(self, page_id: str) -> tuple[int, int]:
        """The page's count and this process's marker, read in one atomic step."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(visits_key(page_id))
            pipe.get(self.marker)
            value, marker = await pipe.execute()
        return int(value or 0), int(marker or 0)


async def apply_ledger(
    pool: aiomysql.Pool, batch_id: str, deltas: Mapping[tuple[str, dt.date], int]
) -> bool:
    """Add a batch to the daily ledger in one transaction; False if it was applied before."""
    # Sorted, so concurrent batches from other processes lock rows in the same order (no deadlock).
    rows = sorted((page, day, visits) for (page, day), visits in deltas.items())
    async with pool.acquire() as conn:
        try:
            # Inside the try: a BEGIN cut off by a cancellation would otherwise leave a pooled
            # connection with an unread reply, and the next batch reading the wrong answers.
            await conn.begin()
            async with conn.cursor() as cur:
                try:
                    await cur.execute(
                        "INSERT INTO counter_ledger_batches (batch_id) VALUES (%s)", (batch_id,)
                    )
                except IntegrityError as exc:
                    if exc.args[0] != DUP_ENTRY:
                        raise
                    await conn.rollback()
                    return False
                await cur.executemany(
                    "INSERT INTO page_visits_daily (page_id, day, visits) VALUES (%s, %s, %s)"
                    " ON DUPLICATE KEY UPDATE visits = visits + VALUES(visits)",
                    rows,
                )
            await conn.commit()
        except BaseException:
            # Closing drops the transaction server-side, also when cancelled mid-query; the pool
            # discards the closed connection.
            conn.close()
            raise
    return True


async def forget_old_ledger_batches(pool: aiomysql.Pool, older_than_s: int) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "DELETE FROM counter_ledger_batches"
            " WHERE applied_at < NOW(6) - INTERVAL %s SECOND LIMIT 10000",
            (older_than_s,),
        )


async def daily_visits(pool: aiomysql.Pool, page_id: str, since: dt.date) -> dict[dt.date, int]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT day, visits FROM page_visits_daily WHERE page_id = %s AND day >= %s",
            (page_id, since),
        )
        return {day: int(visits) for day, visits in await cur.fetchall()}
