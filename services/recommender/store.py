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
from pymysql.constants.ER import DUP_ENTRY
from pymysql.err import IntegrityError

from services.recommender.metrics import QUERIES
from services.recommender.scoring import EventKind, Tally

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


# The most recent events of each kind a miss reads per user (RECOMMENDER_MAX_EVENTS): older ones
# in the window do not count. Bounds MySQL's work, the reply and the loader's memory per miss.
MAX_EVENTS = 1_000
# The global popularity keeps the top categories only: explore picks 2 of them that the user has
# not touched, so 100 answer exactly for anyone who touched fewer than 99 of them, and the map
# stays this size however many distinct categories events bring.
POPULARITY_TOP = 100


def _recent(table: str, at: str) -> str:
    kind = "search" if table == "searches" else "purchase"
    # Binary: scoring tells categories apart exactly (the column's collation would fold case
    # and trailing spaces). The ORDER BY is the index `user_recent (user_id, time, category)`
    # (and the primary key InnoDB appends) read backwards, so MySQL stops after %s entries with
    # no sort; ordering by (time, id) alone would sort every row of the user's window first. The
    # columns are qualified: a bare `category` would name the select list's binary cast.
    return (
        f"(SELECT '{kind}' AS kind, CAST(category AS BINARY) AS category, {at} AS at"
        f" FROM {table} WHERE user_id = %s AND {at} >= %s"
        f" ORDER BY {table}.{at} DESC, {table}.category DESC, {table}.id DESC LIMIT %s)"
    )


def user_events_query(
    user_ids: Sequence[int], since: dt.datetime, now: dt.datetime, max_events: int
) -> tuple[str, tuple[object, ...]]:
    """The statement of `events_of` and its parameters (the tests EXPLAIN it)."""
    parts: list[str] = []
    params: list[object] = []
    for user_id in user_ids:
        for table, at in (("searches", "searched_at"), ("purchases", "purchased_at")):
            parts.append(
                f"SELECT {user_id:d} AS user_id, kind, category, at FROM {_recent(table, at)} AS r"
            )
            params += [user_id, since, max_events]
    # Whole days as scoring counts them: floor(age / 1 day), from microseconds (DIV truncates,
    # and a negative age, clock skew, is 0).
    sql = (
        "SELECT user_id, kind, category,"
        " GREATEST(0, TIMESTAMPDIFF(MICROSECOND, at, %s) DIV 86400000000) AS age, COUNT(*)"
        f" FROM ({' UNION ALL '.join(parts)}) AS recent"
        # ORDER BY NULL: MariaDB would sort the groups, which scoring orders by itself.
        " GROUP BY user_id, kind, category, age ORDER BY NULL"
    )
    return sql, (now.astimezone(dt.UTC).replace(tzinfo=None), *params)


async def events_of(
    pool: aiomysql.Pool,
    user_ids: Sequence[int],
    since: dt.datetime,
    now: dt.datetime,
    *,
    timeout_s: float,
    max_events: int = MAX_EVENTS,
) -> dict[int, list[Tally]]:
    """Every user's tallies of (kind, category, whole days of age) over their most recent
    `max_events` searches and `max_events` purchases since `since`, in one query: MySQL reads at
    most 2 x max_events index entries per user and sends at most that many rows."""
    sql, params = user_events_query(user_ids, since, now, max_events)
    QUERIES.labels("user_events").inc()
    async with _connection(pool, timeout_s) as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    found: dict[int, list[Tally]] = defaultdict(list)
    for user_id, kind, category, age, count in rows:
        name = category.decode() if isinstance(category, bytes) else str(category)
        found[int(user_id)].append(Tally(kind, name, int(age), int(count)))
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
            ") AS counted GROUP BY category"
            " ORDER BY SUM(s) + 3 * SUM(p) DESC, category LIMIT %s",
            (since, since, POPULARITY_TOP),
        )
        return [(c, int(s), int(p)) for c, s, p in await cur.fetchall()]


# The one statement per kind of event, also used by the bulk generator (generate.py), with its
# parameters in this order: (user_id, text, category, naive UTC time, success | amount).
INSERT_SEARCH = (
    "INSERT INTO searches (user_id, query, category, searched_at, success)"
    " VALUES (%s, %s, %s, %s, %s)"
)
INSERT_PURCHASE = (
    "INSERT INTO purchases (user_id, product_name, category, purchased_at, amount)"
    " VALUES (%s, %s, %s, %s, %s)"
)
# How many events are stored (the generator fills only an empty database when asked to).
COUNT_EVENTS = "SELECT (SELECT COUNT(*) FROM searches) + (SELECT COUNT(*) FROM purchases)"


async def _insert_event(cur: aiomysql.Cursor, event: NewEvent) -> None:
    naive = event.at.astimezone(dt.UTC).replace(tzinfo=None)
    common = (event.user_id, event.text, event.category, naive)
    if event.kind == "search":
        await cur.execute(INSERT_SEARCH, (*common, event.success))
    else:
        await cur.execute(INSERT_PURCHASE, (*common, event.amount))


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


# --- retention --------------------------------------------------------------------------------

# The tables the retention empties of old rows, each by the time column an index leads with
# (`recent (time, category)` on the event tables, `created (created_at)` on event_keys), so a
# batch is a range read from the index's start, never a scan of the table.
RETAINED: tuple[tuple[str, str], ...] = (
    ("searches", "searched_at"),
    ("purchases", "purchased_at"),
    ("event_keys", "created_at"),
)
# One retention statement's bound: MariaDB aborts (and rolls back) it after the server-side
# limit; the client gives up a second later and closes the connection (closing also ends the
# statement should the server not have).
RETENTION_TIMEOUT_S = 10.0
RETENTION_SERVER_TIMEOUT_S = 9.0


async def delete_older(
    pool: aiomysql.Pool,
    table: str,
    column: str,
    cutoff: dt.datetime,
    limit: int,
    *,
    timeout_s: float = RETENTION_TIMEOUT_S,
    server_timeout_s: float = RETENTION_SERVER_TIMEOUT_S,
) -> int:
    """Delete at most `limit` rows of `table` whose `column` is before `cutoff` (naive UTC), the
    oldest first; the number deleted. One autocommitted statement: deleting rows another process
    deleted already deletes nothing, so concurrent passes are harmless."""
    if (table, column) not in RETAINED:
        raise ValueError(f"not a retained table: {table}.{column}")
    QUERIES.labels("retention").inc()
    async with _connection(pool, timeout_s) as conn, conn.cursor() as cur:
        await cur.execute(
            f"SET STATEMENT max_statement_time = {server_timeout_s:.3f} FOR"
            f" DELETE FROM {table} WHERE {column} < %s ORDER BY {column} LIMIT %s",
            (cutoff.astimezone(dt.UTC).replace(tzinfo=None) if cutoff.tzinfo else cutoff, limit),
        )
        return int(cur.rowcount)
