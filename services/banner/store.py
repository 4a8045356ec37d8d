"""Every MySQL statement of the banner: the served sets, the gift codes, the ingest's tables.

The domain modules (catalog.py, giftcodes.py, minting.py, ingest.py, repool.py) decide when a
transaction begins, commits or is retried; the functions here run statements on the connection or
cursor they are given, so a transaction spans as many of them as its caller needs. The serving
side is async (aiomysql); the command-line tools' side is blocking (pymysql).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import aiomysql

from services.banner.rules import BannerSet, BannerStats

# --- the served sets (catalog.py) ------------------------------------------------------------


async def load_sets(pool: aiomysql.Pool, *, unless: int | None) -> tuple[int, list[BannerSet]]:
    """The generation MySQL holds and its sets; no sets (not read) when it is `unless`."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT generation FROM banner_generation WHERE id = 1")
        row = await cur.fetchone()
        generation = int(row[0]) if row else 0
        if generation == unless:
            return generation, []
        await cur.execute("SELECT quarter, campaign_id, x, rule, banners FROM banner_sets")
        rows = await cur.fetchall()
    sets = [
        BannerSet(int(q), int(c), int(x), rule, tuple(json.loads(banners)))
        for q, c, x, rule, banners in rows
    ]
    return generation, sets


# --- gift codes: minting (minting.py) --------------------------------------------------------

_PICK = "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL LIMIT 1 FOR UPDATE"
_AVAILABLE = "SELECT COUNT(*) FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL"


async def record_mint_key(cur: aiomysql.Cursor, campaign_id: int, key: str, count: int) -> None:
    """The key's row, first in the mint's transaction: IntegrityError when a mint recorded it."""
    await cur.execute(
        "INSERT INTO gift_code_mints (campaign_id, idem_key, requested, minted, available)"
        " VALUES (%s, %s, %s, 0, 0)",
        (campaign_id, key, count),
    )


async def mint_of_key(
    cur: aiomysql.Cursor, campaign_id: int, key: str
) -> tuple[int, int, int] | None:
    """(requested, minted, available) of the mint that recorded the key, if it is still kept."""
    await cur.execute(
        "SELECT requested, minted, available FROM gift_code_mints"
        " WHERE campaign_id = %s AND idem_key = %s",
        (campaign_id, key),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    requested, minted, available = map(int, row)
    return requested, minted, available


async def record_mint_result(
    cur: aiomysql.Cursor, campaign_id: int, key: str, minted: int, available: int
) -> None:
    await cur.execute(
        "UPDATE gift_code_mints SET minted = %s, available = %s"
        " WHERE campaign_id = %s AND idem_key = %s",
        (minted, available, campaign_id, key),
    )


async def insert_codes(cur: aiomysql.Cursor, campaign_id: int, codes: list[str]) -> int:
    """How many were inserted: INSERT IGNORE, so a colliding code is simply not minted."""
    await cur.executemany(
        "INSERT IGNORE INTO gift_codes (code, campaign_id) VALUES (%s, %s)",
        [(code, campaign_id) for code in codes],
    )
    return int(cur.rowcount)


async def count_available(cur: aiomysql.Cursor, campaign_id: int) -> int:
    """Unclaimed codes of the campaign: a range count on the (campaign_id, visitor) index."""
    await cur.execute(_AVAILABLE, (campaign_id,))
    row = await cur.fetchone()
    return int(row[0])


async def forget_mint_keys(pool: aiomysql.Pool, *, older_than_s: int, limit: int) -> None:
    """Delete up to `limit` mint keys older than `older_than_s`, in one autocommit statement."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "DELETE FROM gift_code_mints WHERE created_at < NOW(6) - INTERVAL %s SECOND"
            " ORDER BY created_at LIMIT %s",
            (older_than_s, limit),
        )


# --- gift codes: claiming (giftcodes.py) -----------------------------------------------------


async def held_code(conn: aiomysql.Connection, campaign_id: int, visitor: str) -> str | None:
    """The code MySQL records for the visitor, if any."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor = %s",
            (campaign_id, visitor),
        )
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def take_code(cur: aiomysql.Cursor, campaign_id: int, visitor: str, code: str) -> bool:
    """Bind the code if it is still unclaimed; whether it was. IntegrityError: the visitor holds
    a code already (one_per_visitor)."""
    taken = await cur.execute(
        "UPDATE gift_codes SET visitor = %s, claimed_at = NOW(6)"
        " WHERE code = %s AND campaign_id = %s AND visitor IS NULL",
        (visitor, code, campaign_id),
    )
    return bool(taken)


async def pick_unclaimed(
    cur: aiomysql.Cursor, campaign_id: int, *, skip_locked: bool
) -> str | None:
    """Lock one unclaimed code (in the caller's transaction); skip_locked passes over the rows
    other claims hold, else this waits for them."""
    await cur.execute(_PICK + (" SKIP LOCKED" if skip_locked else ""), (campaign_id,))
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def bind_code(cur: aiomysql.Cursor, visitor: str, code: str) -> None:
    """Bind a code this transaction holds locked (pick_unclaimed)."""
    await cur.execute(
        "UPDATE gift_codes SET visitor = %s, claimed_at = NOW(6) WHERE code = %s",
        (visitor, code),
    )


async def unclaimed_codes(pool: aiomysql.Pool, campaign_id: int, limit: int) -> list[str]:
    """Up to `limit` unclaimed codes, highest first: the candidates come from the top, the
    transaction's SKIP LOCKED takes from the bottom (index order), so the two meet only at the
    last codes."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT code FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL"
            " ORDER BY code DESC LIMIT %s",
            (campaign_id, limit),
        )
        return [str(row[0]) for row in await cur.fetchall()]


# --- the command-line tools: blocking pymysql cursors (ingest.py, repool.py) -----------------

# The event tables a file of each kind loads into, with their columns after `quarter`.
_EVENT_TABLES = {
    "clicks": ("banner_clicks", "quarter, click_id, banner_id, campaign_id"),
    "conversions": ("banner_conversions", "quarter, conversion_id, click_id, revenue"),
}


def bind_legacy_claim(cur: Any, campaign_id: int, visitor: str, code: str) -> int:
    """Record a legacy claim map's binding if the code is still unclaimed; rows bound (0 or 1).
    IntegrityError: MySQL records the visitor with another code."""
    return int(
        cur.execute(
            "UPDATE gift_codes SET visitor = %s, claimed_at = NOW(6)"
            " WHERE code = %s AND campaign_id = %s AND visitor IS NULL",
            (visitor, code, campaign_id),
        )
    )


def ingested_at(cur: Any, digest: str) -> dt.datetime | None:
    """When a file with this content hash was ingested, if it was."""
    cur.execute("SELECT ingested_at FROM banner_files WHERE sha256 = %s", (digest,))
    row = cur.fetchone()
    return row[0] if row else None


def add_impressions(cur: Any, counts: list[tuple[int, int, int, int]]) -> None:
    """(quarter, campaign, banner, impressions) rows, added to what the table counts."""
    cur.executemany(
        "INSERT INTO banner_impressions (quarter, campaign_id, banner_id, impressions)"
        " VALUES (%s, %s, %s, %s)"
        " ON DUPLICATE KEY UPDATE impressions = impressions + VALUES(impressions)",
        counts,
    )


def insert_events(cur: Any, kind: str, quarter: int, rows: list[tuple[Any, ...]]) -> int:
    """Clicks or conversions, skipping those whose natural key exists; how many were new."""
    table, columns = _EVENT_TABLES[kind]
    cur.executemany(
        f"INSERT IGNORE INTO {table} ({columns}) VALUES (%s, %s, %s, %s)",
        [(quarter, *row) for row in rows],
    )
    return int(cur.rowcount)


def record_file(
    cur: Any, digest: str, quarter: int, kind: str, name: str, counts: tuple[int, int, int]
) -> None:
    """The file's record, with its (loaded, skipped, malformed) row counts."""
    cur.execute(
        "INSERT INTO banner_files (sha256, quarter, kind, name, rows_loaded, rows_skipped,"
        " rows_malformed) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (digest, quarter, kind, name, *counts),
    )


def quarter_activity(
    cur: Any, quarter: int
) -> tuple[dict[int, dict[int, BannerStats]], dict[int, set[int]]]:
    """Per campaign: its banners' clicks, conversions and revenue, and the banners it showed."""
    stats: dict[int, dict[int, BannerStats]] = defaultdict(dict)
    cur.execute(
        "SELECT campaign_id, banner_id, COUNT(*) FROM banner_clicks WHERE quarter = %s"
        " GROUP BY campaign_id, banner_id",
        (quarter,),
    )
    for campaign, banner, clicks in cur.fetchall():
        stats[campaign][banner] = BannerStats(banner, clicks=int(clicks))
    # Revenue joins conversions to clicks through click_id, never through impressions.
    cur.execute(
        "SELECT c.campaign_id, c.banner_id, COUNT(*), SUM(v.revenue) FROM banner_conversions v"
        " JOIN banner_clicks c ON c.quarter = v.quarter AND c.click_id = v.click_id"
        " WHERE v.quarter = %s GROUP BY c.campaign_id, c.banner_id",
        (quarter,),
    )
    for campaign, banner, conversions, revenue in cur.fetchall():
        clicks = stats[campaign][banner].clicks
        stats[campaign][banner] = BannerStats(banner, clicks, int(conversions), Decimal(revenue))
    shown: dict[int, set[int]] = defaultdict(set)
    cur.execute(
        "SELECT campaign_id, banner_id FROM banner_impressions WHERE quarter = %s", (quarter,)
    )
    for campaign, banner in cur.fetchall():
        shown[campaign].add(banner)
    return stats, shown


def count_files(cur: Any) -> int:
    cur.execute("SELECT COUNT(*) FROM banner_files")
    (files,) = cur.fetchone()
    return int(files)


def files_in_sets(cur: Any) -> int | None:
    """How many files the served sets reflect: None before any sets, -1 for sets computed
    before the count was recorded."""
    cur.execute("SELECT files_included FROM banner_generation WHERE id = 1")
    row = cur.fetchone()
    if row is None:
        return None
    return -1 if row[0] is None else int(row[0])


def replace_sets(cur: Any, rows: list[tuple[int, int, int, str, str]], *, chunk: int) -> None:
    """Every set replaced by these (quarter, campaign, x, rule, banners JSON) rows, inserted
    `chunk` at a time."""
    cur.execute("DELETE FROM banner_sets")
    for start in range(0, len(rows), chunk):
        cur.executemany(
            "INSERT INTO banner_sets (quarter, campaign_id, x, rule, banners)"
            " VALUES (%s, %s, %s, %s, %s)",
            rows[start : start + chunk],
        )


def next_generation(cur: Any, files: int) -> int:
    """A new generation, recording the count of files its sets reflect; its number."""
    cur.execute(
        "INSERT INTO banner_generation (id, generation, computed_at, files_included)"
        " VALUES (1, 1, NOW(6), %s) ON DUPLICATE KEY UPDATE generation = generation + 1,"
        " computed_at = NOW(6), files_included = VALUES(files_included)",
        (files,),
    )
    cur.execute("SELECT generation FROM banner_generation WHERE id = 1")
    (generation,) = cur.fetchone()
    return int(generation)


def count_sets(cur: Any) -> int:
    cur.execute("SELECT COUNT(*) FROM banner_sets")
    (count,) = cur.fetchone()
    return int(count)
