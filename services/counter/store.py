"""Redis and MySQL access of the counter: applying batches exactly once, reading counts, the
ledger streams."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiomysql
import orjson
from pymysql.constants.ER import DUP_ENTRY
from pymysql.err import IntegrityError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.counter.buffer import Batch, LedgerKey
from services.counter.pages import visits_key

# The ledger's stream on every shard, its consumer group, and the payload bytes it holds (kept by
# the scripts below in the same atomic steps as the stream itself: the backlog bound's input).
LEDGER_STREAM = "counter:ledger"
LEDGER_BYTES = "counter:ledger:bytes"
LEDGER_GROUP = "ledger"

# KEYS[1] = this process's marker, KEYS[2] = ledger stream, KEYS[3] = its byte count,
# KEYS[4..] = page keys; ARGV[1] = batch seq, ARGV[2] = marker TTL in seconds, ARGV[3] = ledger
# bound in bytes (0: no ledger), ARGV[4] = ledger batch id, ARGV[5] = ledger rows,
# ARGV[6..] = deltas in the order of the keys.
# Returns 1 applied, 0 applied before (a retry), -1 refused: the ledger backlog is full.
_APPLY = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= last then
  return 0
end
local bound = tonumber(ARGV[3])
if bound > 0 then
  if tonumber(redis.call('GET', KEYS[3]) or '0') >= bound then
    return -1
  end
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'rows', ARGV[5])
  redis.call('INCRBY', KEYS[3], string.len(ARGV[5]))
end
for i = 4, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[i + 2])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
# KEYS[1] = ledger stream, KEYS[2] = its byte count; ARGV[1] = group, ARGV[2] = entry id.
# Done with an entry: acknowledged and deleted, its bytes released once (the XDEL that removed it).
_DONE = """
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if #found == 1 and redis.call('XDEL', KEYS[1], ARGV[2]) == 1 then
  local fields = found[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'rows' then
      redis.call('DECRBY', KEYS[2], string.len(fields[i + 1]))
    end
  end
end
return 1
"""
# A marker outlives any retry of its process's batches by far; it then expires by itself.
MARKER_TTL_S = 7 * 24 * 3600


class LedgerBacklogFull(Exception):
    """The shard's ledger stream holds its bound: MySQL is behind, the batch was not applied."""


@dataclass(frozen=True)
class LedgerEntry:
    """One batch's ledger rows as read from a shard's stream; `rows` is None once deleted."""

    entry_id: str
    batch_id: str
    rows: dict[LedgerKey, int] | None


def encode_rows(rows: Mapping[LedgerKey, int]) -> bytes:
    return orjson.dumps([[page, day.isoformat(), count] for (page, day), count in rows.items()])


def decode_rows(payload: bytes) -> dict[LedgerKey, int]:
    return {(page, dt.date.fromisoformat(day)): int(n) for page, day, n in orjson.loads(payload)}


def _entries(found: list[tuple[bytes, dict[bytes, bytes]]]) -> list[LedgerEntry]:
    entries = []
    for entry_id, fields in found:
        if not fields:
            # read from the pending list after another consumer deleted it: only to acknowledge
            entries.append(LedgerEntry(entry_id.decode(), "", None))
        else:
            rows = decode_rows(fields[b"rows"])
            entries.append(LedgerEntry(entry_id.decode(), fields[b"id"].decode(), rows))
    return entries


class ShardStore:
    def __init__(self, name: str, client: Redis, writer_id: str) -> None:
        self.name = name
        self.client = client
        self.marker = f"counter:applied:{writer_id}"
        # The same id names this process in the ledger's consumer group.
        self.consumer = writer_id
        self._apply = client.register_script(_APPLY)
        self._done = client.register_script(_DONE)

    async def apply(self, batch: Batch, ledger_bound_bytes: int) -> bool:
        """Apply the batch to the totals and the ledger stream (bound 0: no ledger); False when
        an earlier attempt had applied it already. Raises LedgerBacklogFull."""
        keys = [
            self.marker,
            LEDGER_STREAM,
            LEDGER_BYTES,
            *(visits_key(page) for page in batch.deltas),
        ]
        rows = encode_rows(batch.rows) if ledger_bound_bytes else b""
        args: list[bytes | str | int] = [
            batch.seq,
            MARKER_TTL_S,
            ledger_bound_bytes,
            batch.ledger_id,
            rows,
        ]
        outcome = int(await self._apply(keys=keys, args=[*args, *batch.deltas.values()]))
        if outcome < 0:
            raise LedgerBacklogFull(self.name)
        return outcome == 1

    async def read(self, page_id: str) -> tuple[int, int]:
        """The page's count and this process's marker, read in one atomic step."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(visits_key(page_id))
            pipe.get(self.marker)
            value, marker = await pipe.execute()
        return int(value or 0), int(marker or 0)

    # --- the ledger stream ------------------------------------------------------------------

    async def create_group(self) -> None:
        """The consumer group, from the stream's start; also after the shard lost its data."""
        try:
            await self.client.xgroup_create(LEDGER_STREAM, LEDGER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def ledger_entries(self, count: int, claim_idle_ms: int) -> list[LedgerEntry]:
        """Entries to apply: this consumer's unacknowledged ones first (a failed attempt), then
        ones a dead or stuck consumer left idle for claim_idle_ms, then new ones."""
        # redis-py's stubs type stream replies as unions of every protocol's shape: Any here.
        mine: Any = await self.client.xreadgroup(
            LEDGER_GROUP, self.consumer, {LEDGER_STREAM: "0"}, count=count
        )
        if mine and mine[0][1]:
            return _entries(mine[0][1])
        claim: Any = await self.client.xautoclaim(
            LEDGER_STREAM, LEDGER_GROUP, self.consumer, claim_idle_ms, "0-0", count=count
        )
        if claim[1]:
            return _entries(claim[1])
        new: Any = await self.client.xreadgroup(
            LEDGER_GROUP, self.consumer, {LEDGER_STREAM: ">"}, count=count
        )
        return _entries(new[0][1]) if new else []

    async def ledger_done(self, entry_id: str) -> None:
        await self._done(keys=[LEDGER_STREAM, LEDGER_BYTES], args=[LEDGER_GROUP, entry_id])

    async def ledger_backlog(self) -> tuple[int, int]:
        """(entries, payload bytes) the shard's ledger stream holds."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xlen(LEDGER_STREAM)
            pipe.get(LEDGER_BYTES)
            entries, held = await pipe.execute()
        return int(entries), int(held or 0)

    async def forget_idle_consumers(self, idle_ms: int) -> None:
        """Drop consumers of exited processes (nothing pending, idle long): every process start
        adds one, and the group would otherwise list them forever."""
        for consumer in await self.client.xinfo_consumers(LEDGER_STREAM, LEDGER_GROUP):
            if consumer["pending"] == 0 and consumer["idle"] > idle_ms:
                await self.client.xgroup_delconsumer(LEDGER_STREAM, LEDGER_GROUP, consumer["name"])


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


async def forget_old_ledger_days(pool: aiomysql.Pool, before: dt.date) -> int:
    """Delete up to 10,000 daily ledger rows older than `before`; the number deleted."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("DELETE FROM page_visits_daily WHERE day < %s LIMIT 10000", (before,))
        return int(cur.rowcount)


async def daily_visits(pool: aiomysql.Pool, page_id: str, since: dt.date) -> dict[dt.date, int]:
    async with pool.acquire() as conn:
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT day, visits FROM page_visits_daily WHERE page_id = %s AND day >= %s",
                    (page_id, since),
                )
                return {day: int(visits) for day, visits in await cur.fetchall()}
        except BaseException:
            # A query cut off by the caller's deadline (MySQL stalled) leaves its reply unread:
            # the connection must not go back to the pool.
            conn.close()
            raise
