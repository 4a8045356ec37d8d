"""Minting gift codes: one MySQL transaction per mint, at most once per Idempotency-Key.

The codes and the key's record commit together, so without the answer either all of them were
added or none was, and the same key again finds out which. The codes are drawn and inserted in
pipelined batches: while the server inserts one batch, the next is drawn.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from dataclasses import dataclass

import aiomysql
from pymysql.err import IntegrityError, OperationalError

from services.banner import store
from services.common.store_errors import MYSQL_ERRORS

log = logging.getLogger(__name__)
CODE_BYTES = 10  # 80 bits: base32, 16 characters, not guessable
# Codes per multi-row INSERT.
MINT_BATCH = 5000
# A mint's Idempotency-Key is remembered this long (a retry after a lost answer comes within
# minutes); each keyed mint then deletes at most this many expired keys, so the table holds about
# one day of mints.
MINT_KEY_RETENTION_S = 24 * 3600
MINT_KEY_PURGE_BATCH = 1000
MINT_KEY_PURGE_TIMEOUT_S = 2.0
# A collision of 80 random bits is not expected: codes lost to one are drawn again, in at most
# this many extra batches (the answer's "minted" says how many were made).
MINT_SPARE_BATCHES = 2


def new_code() -> str:
    return base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().rstrip("=")


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


async def mint_codes(
    pool: aiomysql.Pool, campaign_id: int, count: int, key: str | None
) -> tuple[Minted, list[str]]:
    """The mint's answer and every code it drew (none when it replays the key's first mint)."""
    async with pool.acquire() as conn:
        # One transaction (one log flush): all the codes are claimable, or none is, and the
        # key is recorded with them. Should anything fail, the pool closes a connection still
        # in a transaction: it rolls back.
        await conn.begin()
        async with conn.cursor() as cur:
            if key is not None:
                try:
                    # First: a concurrent mint with the same key waits here on this row's
                    # lock until this one commits (then replays it) or rolls back.
                    await store.record_mint_key(cur, campaign_id, key, count)
                except IntegrityError:
                    await conn.rollback()
                    first = await store.mint_of_key(cur, campaign_id, key)
                    if first is None:  # forgotten in between (past its retention): mint anew
                        raise OperationalError(1213, "the key's mint vanished") from None
                    return Minted(*first, replayed=True), []
            minted, drawn = await _insert_pipelined(cur, campaign_id, count)
            available = await store.count_available(cur, campaign_id)
            if key is not None:
                await store.record_mint_result(cur, campaign_id, key, minted, available)
        await conn.commit()
    return Minted(count, minted, available), drawn


async def forget_old_keys(pool: aiomysql.Pool) -> None:
    """Mint keys are kept MINT_KEY_RETENTION_S: each keyed mint deletes a bounded batch of
    older ones, in its own autocommit statement (not under the mint's locks)."""
    try:
        async with asyncio.timeout(MINT_KEY_PURGE_TIMEOUT_S):
            await store.forget_mint_keys(
                pool, older_than_s=MINT_KEY_RETENTION_S, limit=MINT_KEY_PURGE_BATCH
            )
    except MYSQL_ERRORS as exc:
        log.debug("old mint keys not purged", extra={"error": repr(exc)})


async def _insert_pipelined(
    cur: aiomysql.Cursor, campaign_id: int, count: int
) -> tuple[int, list[str]]:
    """Insert `count` new codes in multi-row INSERTs of MINT_BATCH, pipelined with drawing them.
    Returns (inserted, every code drawn)."""
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
            insert = store.insert_codes(cur, campaign_id, batch)
            in_flight = _Pending(asyncio.create_task(insert, name=name), batch)
            await asyncio.sleep(0)  # it sends its INSERT; the next batch is drawn meanwhile
        if in_flight is not None:
            minted += await in_flight.task
            in_flight = None
    finally:
        if in_flight is not None:  # cancelled or failed: the transaction rolls back
            in_flight.task.cancel()
    return minted, drawn
