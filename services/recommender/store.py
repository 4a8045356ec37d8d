"""MySQL access of the recommender: events by user (one query for any number of users), global
popularity, and recording an event. Every query is counted, so tests and dashboards can see that a
batch costs one query and a stampede of misses for one user costs one in the whole cluster."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

import aiomysql
from prometheus_client import Counter

from services.recommender.scoring import Event, EventKind

QUERIES = Counter("recommender_mysql_queries", "Queries sent to MySQL", ["query"])


async def events_of(
    pool: aiomysql.Pool, user_ids: Sequence[int], since: dt.datetime
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
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, (*user_ids, since, *user_ids, since))
        rows = await cur.fetchall()
    found: dict[int, list[Event]] = defaultdict(list)
    for user_id, kind, category, at in rows:
        found[int(user_id)].append(Event(kind, category, at.replace(tzinfo=dt.UTC)))
    return found


async def popularity_counts(pool: aiomysql.Pool, since: dt.datetime) -> list[tuple[str, int, int]]:
    QUERIES.labels("popularity").inc()
    async with pool.acquire() as conn, conn.cursor() as cur:
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


async def record(
    pool: aiomysql.Pool,
    user_id: int,
    kind: EventKind,
    category: str,
    at: dt.datetime,
    *,
    text: str = "",
    success: bool = True,
    amount: Decimal = Decimal(0),
) -> None:
    QUERIES.labels("record_event").inc()
    naive = at.astimezone(dt.UTC).replace(tzinfo=None)
    async with pool.acquire() as conn, conn.cursor() as cur:
        if kind == "search":
            await cur.execute(
                "INSERT INTO searches (user_id, query, category, searched_at, success)"
                " VALUES (%s, %s, %s, %s, %s)",
                (user_id, text, category, naive, success),
            )
        else:
            await cur.execute(
                "INSERT INTO purchases (user_id, product_name, category, amount, purchased_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (user_id, text, category, amount, naive),
            )
