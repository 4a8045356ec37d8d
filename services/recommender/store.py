"""MySQL access of the recommender: events by user (one query for any number of users), global
popularity, and recording an event exactly once per idempotency key. Every query is counted, so
tests and dashboards can see that a batch costs one query and a stampede of misses for one user
costs one in the whole cluster.

Every wait on MySQL is bounded: aiomysql has no per-query timeout, so each piece of work runs
under `asyncio.timeout`, the wait for a pooled connection included. A query cut off mid-reply
leaves its answer unread on the socket; such a connection is closed, never handed back to the
pool, so the next user of the pool never reads another query's reply.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import aiomysql
from prometheus_client import Counter
from pymysql.constants.ER import DUP_ENTRY
from pymysql.err import IntegrityError

from services.recommender.scoring import Event, EventKind

QUERIES = Counter("recommender_mysql_queries", "Queries sent to MySQL", ["query"])
# A request waits at most this long for MySQL in all (connection, query, reply); longer counts
# as MySQL being unavailable.
QUERY_TIMEOUT_S = 2.0
# The global popularity scans the whole window: it runs in the background and may take longer.
POPULARITY_TIMEOUT_S = 10.0

# What recording an event did: inserted it, found the same event under its key (a retry), or
# found another event under its key.
Recorded = Literal["inserted", "replayed", "key_reused"]


@dataclass(frozen=True)
class NewEvent:
    user_id: int
    kind: EventKind
    category: str
    at: dt.datetime
    text: str = ""
    success: bool = True
    amount: Decimal = Decimal(0)


@asynccontextmanager
async def _connection(pool: aiomysql.Pool, timeout_s: float) -> AsyncIterator[aiomysql.Connection]:
    """A pooled connection for one piece of work that ends by `timeout_s` (TimeoutError)."""
    async with asyncio.timeout(timeout_s), pool.acquire() as conn:
        try:
            yield conn
        except BaseException:
            # Also on cancellation: closed, the pool drops it (and the server its transaction).
            conn.close()
            raise


async def events_of(
    pool: aiomysql.Pool, user_ids: Sequence[int], since: dt.datetime, *, timeout_s: float
) -> dict[int, list[Event]]:
    """Every user's events since `since`, in one query."""
    marks = ", ".join(["%s"] * len(user_ids))
    sql = (
        f"SELECT user_id, 'search', category, searched_at FROM searches"
        f" WHERE user_id IN ({marks}) AND searched_at >= %s"
        f" UNION ALL"
        f" SELECT user_id, 'purchase', category, purchased_at FROM purchases"
        f" WHERE user_id IN ({marks}) AND purchased_at >= %s"
    )
    QUERIES.labels("user_events").inc()
    async with _connection(pool, timeout_s) as conn, conn.cursor() as cur:
        await cur.execute(sql, (*user_ids, since, *user_ids, since))
        rows = await cur.fetchall()
    found: dict[int, list[Event]] = defaultdict(list)
    for user_id, kind, category, at in rows:
        found[int(user_id)].append(Event(kind, category, at.replace(tzinfo=dt.UTC)))
    return found


async def popularity_counts(pool: aiomysql.Pool, since: dt.datetime) -> list[tuple[str, int, int]]:
    QUERIES.labels("popularity").inc()
    async with _connection(pool, POPULARITY_TIMEOUT_S) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT category, SUM(s), SUM(p) FROM ("
            " SELECT category, COUNT(*) AS s, 0 AS p FROM searches"
            "  WHERE searched_at >= %s GROUP BY category"
            " UNION ALL"
            " SELECT category, 0, COUNT(*) FROM purchases"
            "  WHERE purchased_at >= %s GROUP BY category"
            ") AS counted GROUP BY category",
            (since, since),
        )
        return [(c, int(s), int(p)) for c, s, p in await cur.fetchall()]


async def _insert_event(cur: aiomysql.Cursor, event: NewEvent) -> None:
    naive = event.at.astimezone(dt.UTC).replace(tzinfo=None)
    if event.kind == "search":
        await cur.execute(
            "INSERT INTO searches (user_id, query, category, searched_at, success)"
            " VALUES (%s, %s, %s, %s, %s)",
            (event.user_id, event.text, event.category, naive, event.success),
        )
    else:
        await cur.execute(
            "INSERT INTO purchases (user_id, product_name, category, amount, purchased_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (event.user_id, event.text, event.category, event.amount, naive),
        )


async def record(
    pool: aiomysql.Pool,
    event: NewEvent,
    *,
    key: str | None = None,
    fingerprint: str = "",
) -> Recorded:
    """Insert the event; with a key, the key and the event commit together or not at all.

    A concurrent request with the same key waits on the key's row lock until the first commits,
    then finds the key: two attempts never both insert."""
    QUERIES.labels("record_event").inc()
    async with _connection(pool, QUERY_TIMEOUT_S) as conn, conn.cursor() as cur:
        if key is None:
            await _insert_event(cur, event)  # one statement: atomic under autocommit
            return "inserted"
        await conn.begin()
        try:
            await cur.execute(
                "INSERT INTO event_keys (user_id, idem_key, fingerprint, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (event.user_id, key, fingerprint, event.at.astimezone(dt.UTC).replace(tzinfo=None)),
            )
        except IntegrityError as exc:
            if exc.args[0] != DUP_ENTRY:
                raise
            await conn.rollback()
            await cur.execute(
                "SELECT fingerprint FROM event_keys WHERE user_id = %s AND idem_key = %s",
                (event.user_id, key),
            )
            row = await cur.fetchone()
            return "replayed" if row is not None and row[0] == fingerprint else "key_reused"
        await _insert_event(cur, event)
        await conn.commit()
    return "inserted"
