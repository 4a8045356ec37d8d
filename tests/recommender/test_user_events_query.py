"""The miss path's one query, against the test cluster's MariaDB: it reads each user's index
backwards and stops at RECOMMENDER_MAX_EVENTS entries per kind (MariaDB's ANALYZE counts the
rows it actually read), and its answer, with many events at one instant across that bound, is
the one the events it keeps give."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.common.mysql import connect_blocking, create_pool
from services.recommender import store
from services.recommender.recommending import Recommender
from services.recommender.scoring import Event, ScoringRules, recommend
from tests.recommender.test_api import new_user
from tests.support.cluster import RunningCluster

RULES = ScoringRules(90, 14)
POPULAR = {"qa-q-pop": 5.0, "qa-q-0": 4.0}
TABLES = {"search": ("searches", "searched_at"), "purchase": ("purchases", "purchased_at")}
LIMIT = 50


def insert(cluster: RunningCluster, user_id: int, events: list[Event]) -> None:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            for kind, (table, column) in TABLES.items():
                mine = [e for e in events if e.kind == kind]
                rows = [(user_id, e.category, e.at.replace(tzinfo=None)) for e in mine]
                if rows:
                    cur.executemany(
                        f"INSERT INTO {table} (user_id, category, {column}) VALUES (%s, %s, %s)",
                        rows,
                    )
        conn.commit()
    finally:
        conn.close()


def analyze(cluster: RunningCluster, user_ids: list[int], now: dt.datetime) -> list[dict[str, Any]]:
    """MariaDB's ANALYZE of the query: the plan with the rows each step really read."""
    since = (now - dt.timedelta(days=RULES.window_days)).replace(tzinfo=None)
    sql, params = store.user_events_query(user_ids, since, now, LIMIT)
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("ANALYZE " + sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def test_a_miss_reads_each_users_index_backwards_and_stops_at_the_bound(
    cluster: RunningCluster,
) -> None:
    now = dt.datetime.now(dt.UTC)
    users = [new_user(), new_user()]
    for user in users:
        # Three times the bound of each kind, spread over the window.
        insert(
            cluster,
            user,
            [
                Event(kind, f"qa-q-{i % 4}", now - dt.timedelta(minutes=37 * i + 1))
                for kind in ("search", "purchase")
                for i in range(3 * LIMIT)
            ],
        )
    steps = [s for s in analyze(cluster, users, now) if s["table"] in ("searches", "purchases")]
    assert len(steps) == 2 * len(users), steps  # one index read per user and kind
    for step in steps:
        assert step["key"] == "user_recent", step
        assert "filesort" not in (step["Extra"] or ""), step  # index order: no sort of the rows
        # Read: the bound (and perhaps the one entry that told the scan to stop), not 3 x.
        assert float(step["r_rows"]) <= LIMIT + 1, step


async def test_events_at_one_instant_across_the_bound_are_kept_in_index_order(
    cluster: RunningCluster,
) -> None:
    """A user with more searches than the bound, many at the same microsecond right where the
    bound falls: the miss keeps the most recent, and among those at the cut's instant the
    greatest categories (index order, read backwards), so every process gives the same answer."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=250_000)
    user = new_user()
    instant = now - dt.timedelta(days=3)
    recent = [
        Event("search", "qa-q-recent", now - dt.timedelta(hours=1 + i)) for i in range(LIMIT - 10)
    ]
    # 40 searches at one instant, 10 of which fit under the bound: 10 of the 20 of category
    # qa-q-z, though the ones inserted last (the greatest ids) are qa-q-a.
    tied = [Event("search", f"qa-q-{c}", instant) for c in "z" * 20 + "b" * 10 + "a" * 10]
    older = [Event("search", "qa-q-old", now - dt.timedelta(days=10)) for _ in range(5)]
    insert(cluster, user, recent + tied + older)
    pool = await create_pool(cluster.mysql_dsn, size=1)
    try:
        loader = Recommender(pool, RULES, max_events=LIMIT)
        loader.popularity = POPULAR
        body = (await loader.answers([user], now))[user]
    finally:
        pool.close()
        await pool.wait_closed()
    kept = recent + [e for e in tied if e.category == "qa-q-z"][:10]
    assert body == recommend(user, kept, POPULAR, RULES, now)
    assert body["metadata"] == {"search_count": LIMIT, "purchase_count": 0}
    recs: Any = body["recommendations"]
    assert recs["recommended_categories"] == ["qa-q-recent", "qa-q-z"]
