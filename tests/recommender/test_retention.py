"""Retention against the test cluster's MariaDB: rows older than the retention go (events and
idempotency keys), in statements of at most the batch size; recent rows and every answer stay
as they were; a private instance's background loop does the same by itself. Also measures the
bytes an event row costs in MariaDB (`-s` prints them): the figure docs/recommender.md uses."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from services.common.mysql import connect_blocking, create_pool
from services.common.redis_shards import RedisShards
from services.common.ring import ShardRing
from services.recommender import retention, store
from services.recommender.recommending import Recommender
from services.recommender.scoring import ScoringRules
from services.recommender.settings import RecommenderSettings
from tests.bounded.conftest import StartService, start_service  # noqa: F401 (a fixture)
from tests.recommender.test_api import new_user
from tests.support.cluster import RunningCluster

RULES = ScoringRules(90, 14)
RETENTION_DAYS = 91
TABLES = {"search": ("searches", "searched_at"), "purchase": ("purchases", "purchased_at")}


def insert(cluster: RunningCluster, user_id: int, kind: str, ages: list[dt.timedelta]) -> None:
    """Rows `ages` before now, written straight into MySQL."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    table, column = TABLES[kind]
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} (user_id, category, {column}) VALUES (%s, %s, %s)",
                [(user_id, f"qa-ret-{i % 3}", now - age) for i, age in enumerate(ages)],
            )
        conn.commit()
    finally:
        conn.close()


def insert_keys(cluster: RunningCluster, user_id: int, ages: list[dt.timedelta]) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO event_keys (user_id, idem_key, fingerprint, created_at)"
                " VALUES (%s, %s, %s, %s)",
                [(user_id, f"key-{i}", "0" * 64, now - age) for i, age in enumerate(ages)],
            )
        conn.commit()
    finally:
        conn.close()


def times_of(cluster: RunningCluster, user_id: int) -> dict[str, list[dt.datetime]]:
    """Every stored time of the user's rows, per table, oldest first."""
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        found = {}
        with conn.cursor() as cur:
            for table, column in store.RETAINED:
                cur.execute(
                    f"SELECT {column} FROM {table} WHERE user_id = %s ORDER BY {column}",
                    (user_id,),
                )
                found[table] = [row[0] for row in cur.fetchall()]
        return found
    finally:
        conn.close()


def days(n: float, **extra: float) -> dt.timedelta:
    return dt.timedelta(days=n, **extra)


@pytest.fixture
def shards(cluster: RunningCluster) -> RedisShards:
    urls = {
        name: f"redis://127.0.0.1:{port}"
        for name, port in zip(cluster.topo.shard_names, cluster.topo.redis_ports, strict=True)
    }
    return RedisShards(urls, pool_size=4, timeout_s=0.5)


@pytest.fixture
def quiet_cluster(cluster: RunningCluster) -> Iterator[None]:
    """The cluster's own retention loops kept out: the test holds their lock, so the rows this
    test deletes are deleted by the test only (a pass that started before is waited out)."""
    client = cluster.redis(ShardRing(cluster.topo.shard_names).shard_for(retention.LOCK_KEY))
    client.set(retention.LOCK_KEY, "test", px=120_000)
    time.sleep(0.5)
    try:
        yield
    finally:
        client.delete(retention.LOCK_KEY)


@pytest.fixture
async def pool(cluster: RunningCluster) -> AsyncIterator[Any]:
    created = await create_pool(cluster.mysql_dsn, size=2)
    try:
        yield created
    finally:
        created.close()
        await created.wait_closed()


def test_the_retention_defaults_to_the_window_plus_a_day_and_never_below_it() -> None:
    base = {"ADMIN_TOKEN": "x" * 32}
    assert RecommenderSettings(**base).retention_days == 91  # type: ignore[arg-type]
    assert RecommenderSettings(**base, WINDOW_DAYS=30).retention_days == 31  # type: ignore[arg-type]
    assert RecommenderSettings(**base, RETENTION_DAYS=90).retention_days == 90  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="below RECOMMENDER_WINDOW_DAYS"):
        RecommenderSettings(**base, RETENTION_DAYS=89)  # type: ignore[arg-type]


async def test_a_pass_deletes_old_rows_in_batches_and_keeps_recent_ones_and_answers(
    cluster: RunningCluster, quiet_cluster: None, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = new_user()
    old = [days(400), days(120), days(95), days(92), days(91, hours=1), days(91, minutes=5)]
    # Within the retention: the window's rows, and one past the window (not scored either).
    recent = [days(0), days(1, hours=3), days(13), days(45), days(89, hours=23), days(90.5)]
    insert(cluster, user, "search", old + recent + old)  # 12 old searches
    insert(cluster, user, "purchase", old[:4] + recent[:3])
    insert_keys(cluster, user, [days(200), days(92), days(2)])
    before = times_of(cluster, user)
    now = dt.datetime.now(dt.UTC)
    recommender = Recommender(pool, RULES)
    recommender.popularity = {"qa-pop-1": 10.0, "qa-pop-2": 5.0}
    answer_before = (await recommender.answers([user], now))[user]

    # Every statement, with a batch of 5: none deletes more than 5, and each table's statements
    # go on until one deletes fewer.
    statements: list[tuple[str, int, int]] = []
    delete_older = store.delete_older

    async def counted(pool_: Any, table: str, column: str, cutoff: Any, limit: int) -> int:
        n = await delete_older(pool_, table, column, cutoff, limit)
        statements.append((table, limit, n))
        return n

    monkeypatch.setattr(store, "delete_older", counted)
    job = retention.Retention(pool, RETENTION_DAYS, batch=5, pause_s=0.01)
    deleted = await job.run_pass(now)

    cutoff = job.cutoff(now)
    after = times_of(cluster, user)
    for table in before:
        assert after[table] == [t for t in before[table] if t >= cutoff], table
    assert [len(after[t]) for t in ("searches", "purchases", "event_keys")] == [6, 3, 1]
    assert all(n <= limit == 5 for _, limit, n in statements)
    for table, _ in store.RETAINED:
        counts = [n for t, _, n in statements if t == table]
        assert counts[-1] < 5, (table, counts)
        assert all(n == 5 for n in counts[:-1]), (table, counts)
        assert sum(counts) == deleted[table]
    # this user's 12 old searches alone take three statements (other tests' old rows add more)
    assert len([t for t, _, _ in statements if t == "searches"]) >= 3
    assert (await recommender.answers([user], now))[user] == answer_before
    assert answer_before["metadata"] == {"search_count": 5, "purchase_count": 3}

    # A second pass finds nothing: one statement per table, each deleting nothing.
    statements.clear()
    assert await job.run_pass(now) == {t: 0 for t, _ in store.RETAINED}
    assert statements == [(t, 5, 0) for t, _ in store.RETAINED]


async def test_one_statement_deletes_at_most_its_limit_the_oldest_first(
    cluster: RunningCluster, quiet_cluster: None, pool: Any
) -> None:
    # Rows older than anything else in the database, so the count is this test's own.
    user = new_user()
    ages = [days(40_000 + i) for i in range(7)]
    insert(cluster, user, "search", ages)
    before = times_of(cluster, user)["searches"]
    cutoff = dt.datetime.now(dt.UTC) - days(39_000)
    assert await store.delete_older(pool, "searches", "searched_at", cutoff, 3) == 3
    assert times_of(cluster, user)["searches"] == before[3:]  # the three oldest went
    assert await store.delete_older(pool, "searches", "searched_at", cutoff, 3) == 3
    assert await store.delete_older(pool, "searches", "searched_at", cutoff, 3) == 1
    with pytest.raises(ValueError, match="not a retained table"):
        await store.delete_older(pool, "users", "created_at", cutoff, 3)


def test_the_deletes_read_the_time_index(cluster: RunningCluster) -> None:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            for table, column in store.RETAINED:
                cur.execute(
                    f"EXPLAIN DELETE FROM {table} WHERE {column} < NOW() - INTERVAL 91 DAY"
                    f" ORDER BY {column} LIMIT 10000"
                )
                names = [d[0] for d in cur.description]
                plan = dict(zip(names, cur.fetchone() or (), strict=False))
                assert plan["key"] == ("created" if table == "event_keys" else "recent"), plan
                assert plan["type"] == "range", plan
    finally:
        conn.close()


async def test_one_worker_takes_each_intervals_pass(
    cluster: RunningCluster, shards: RedisShards, pool: Any
) -> None:
    _, client = shards.owner(retention.LOCK_KEY)
    await client.delete(retention.LOCK_KEY)
    try:
        first = retention.Retention(pool, RETENTION_DAYS, redis=shards)
        second = retention.Retention(pool, RETENTION_DAYS, redis=shards)
        assert await first._my_turn(30)
        assert not await second._my_turn(30)
        assert not await first._my_turn(30)  # once per interval, whoever asks
        assert 0 < await client.pttl(retention.LOCK_KEY) <= 30_000
    finally:
        await client.delete(retention.LOCK_KEY)
        await shards.close()


async def test_a_private_instance_deletes_old_rows_by_itself(
    cluster: RunningCluster,
    start_service: StartService,  # noqa: F811
) -> None:
    user = new_user()
    insert(cluster, user, "search", [days(100), days(3)])
    insert(cluster, user, "purchase", [days(92), days(4)])
    insert_keys(cluster, user, [days(150), days(1)])
    start_service("recommender", RECOMMENDER_RETENTION_INTERVAL_S="1")
    deadline = time.monotonic() + 30
    while True:
        left = {t: len(v) for t, v in times_of(cluster, user).items()}
        if left == {"searches": 1, "purchases": 1, "event_keys": 1} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert left == {"searches": 1, "purchases": 1, "event_keys": 1}


def _bytes_per_row(cur: Any, table: str, rows: list[tuple[object, ...]], insert_sql: str) -> float:
    probe = f"qa_probe_{table}"
    cur.execute(f"DROP TABLE IF EXISTS {probe}")
    cur.execute(f"CREATE TABLE {probe} LIKE {table}")
    try:
        for i in range(0, len(rows), 2_000):
            cur.executemany(insert_sql.format(table=probe), rows[i : i + 2_000])
        cur.execute(f"ANALYZE TABLE {probe}")
        cur.fetchall()
        cur.execute(
            "SELECT data_length + index_length FROM information_schema.TABLES"
            " WHERE table_schema = DATABASE() AND table_name = %s",
            (probe,),
        )
        row = cur.fetchone()
        # And what one retention statement of 10,000 of these rows takes.
        column = dict(store.RETAINED)[table]
        started = time.perf_counter()
        cur.execute(f"DELETE FROM {probe} ORDER BY {column} LIMIT 10000")
        DELETE_SECONDS[table] = round(time.perf_counter() - started, 3)
        return int(row[0]) / len(rows)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {probe}")


# What docs/recommender.md states, bytes per row with its indexes (the largest rows a client can
# send: 255 four-byte characters of text, 64-character categories, 255-character keys).
DELETE_SECONDS: dict[str, float] = {}
# InnoDB's sizes are whole pages, so the figures hold within a margin only.
DOCUMENTED_MAX_BYTES = {"searches": 1_552, "purchases": 1_552, "event_keys": 696}


def test_bytes_per_event_row_in_mariadb(cluster: RunningCluster) -> None:
    n = 20_000
    at = dt.datetime(2020, 1, 1)
    conn = connect_blocking(cluster.mysql_dsn)
    measured: dict[str, tuple[float, float, float]] = {}
    try:
        with conn.cursor() as cur:
            search_sql = (
                "INSERT INTO {table} (user_id, query, category, searched_at, success)"
                " VALUES (%s, %s, %s, %s, %s)"
            )
            purchase_sql = (
                "INSERT INTO {table} (user_id, product_name, category, amount, purchased_at)"
                " VALUES (%s, %s, %s, %s, %s)"
            )
            key_sql = (
                "INSERT INTO {table} (user_id, idem_key, fingerprint, created_at)"
                " VALUES (%s, %s, %s, %s)"
            )
            text, category = "\N{GRINNING FACE}" * 255, "c" * 64
            for label, big in (("typical", False), ("largest", True)):
                q = text if big else "blue kayak"
                c = category if big else "Sports & Outdoors"
                s = _bytes_per_row(
                    cur,
                    "searches",
                    [(10**12 + i, q, c, at + dt.timedelta(seconds=i), True) for i in range(n)],
                    search_sql,
                )
                p = _bytes_per_row(
                    cur,
                    "purchases",
                    [
                        (10**12 + i, q, c, "9999999999.99", at + dt.timedelta(seconds=i))
                        for i in range(n)
                    ],
                    purchase_sql,
                )
                k = _bytes_per_row(
                    cur,
                    "event_keys",
                    [
                        (10**12 + i, (f"{i:08d}" * 32)[:255] if big else f"order-{i}", "f" * 64, at)
                        for i in range(n)
                    ],
                    key_sql,
                )
                measured[label] = (s, p, k)
        conn.commit()
    finally:
        conn.close()
    print(f"\nbytes per row (data + indexes, {n:,} rows): {measured}")
    print(f"a 10,000-row delete of the largest rows, seconds: {DELETE_SECONDS}")
    for table, got in zip(DOCUMENTED_MAX_BYTES, measured["largest"], strict=True):
        assert got <= 1.25 * DOCUMENTED_MAX_BYTES[table], (table, got)
