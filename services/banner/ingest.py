"""Load a banner dataset into MySQL, recompute the sets to serve, and tell every instance.

    python -m services.banner.ingest DIR        (MYSQL_DSN and REDIS_SHARDS from the environment)

DIR holds `1/ 2/ 3/ 4/` with `impressions_N.csv`, `clicks_N.csv`, `conversions_N.csv`. Each file
loads in one transaction together with its record in `banner_files`, so a file is either wholly
in (its valid rows) or not at all. A file whose content hash is already recorded is rejected and
logged. Clicks and conversions whose natural key (click_id, conversion_id) exists in the quarter
are skipped and counted; impressions are counts, so a repeated row is one more impression.
Malformed rows are reported with file and line and left out; the rest of the file loads.

After loading, the sets of every quarter are recomputed by the rules (rules.py) in one
transaction with a new generation number and the count of files they reflect; a rerun that loads
nothing new recomputes too when that count is behind (an ingest stopped between committing its
files and its sets). The generation is published on Redis (`banner:sets`): running
instances reload without a restart, and those that missed the message see the generation change
on their periodic check.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pymysql
import redis

from services.banner.catalog import SETS_CHANNEL
from services.banner.rules import QUARTERS, BannerStats, select
from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from services.common.settings import parse_shards

log = logging.getLogger("services.banner.ingest")
KINDS = ("impressions", "clicks", "conversions")
HEADERS = {
    "impressions": ["banner_id", "campaign_id"],
    "clicks": ["click_id", "banner_id", "campaign_id"],
    "conversions": ["conversion_id", "click_id", "revenue"],
}
MAX_ID = 2**63 - 1
MAX_SMALL_ID = 2**32 - 1
MAX_REVENUE = Decimal("1e14")
CHUNK = 5_000
SHOWN_MALFORMED = 20


class Malformed(ValueError):
    pass


@dataclass
class FileReport:
    name: str
    status: str = "loaded"
    rows: int = 0
    loaded: int = 0
    skipped: int = 0
    malformed: list[tuple[int, str]] = field(default_factory=list)


def _int(value: str, limit: int, what: str) -> int:
    # ASCII digits only: str.isdigit() also takes '²' or '①', which int() refuses (the ingest
    # aborted on such a row), and int() takes other scripts' digits, which are no ids. The length
    # before int(): it refuses more than 4,300 digits, and no id in range has more than 19.
    if not (value.isascii() and value.isdigit()):
        raise Malformed(f"{what} is not a positive integer: {value[:40]!r}")
    if len(value) > len(str(limit)) or not 0 < int(value) <= limit:
        raise Malformed(f"{what} out of range: {value[:40]!r}")
    return int(value)


def _revenue(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise Malformed(f"revenue is not a number: {value[:40]!r}") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_REVENUE:
        raise Malformed(f"revenue out of range: {value[:40]!r}")
    return amount.quantize(Decimal("0.000001"))


def _parse_row(kind: str, row: list[str]) -> tuple[Any, ...]:
    if len(row) != len(HEADERS[kind]):
        raise Malformed(f"expected {len(HEADERS[kind])} fields, found {len(row)}")
    row = [cell.strip() for cell in row]
    if kind == "impressions":
        return (_int(row[0], MAX_SMALL_ID, "banner_id"), _int(row[1], MAX_SMALL_ID, "campaign_id"))
    if kind == "clicks":
        return (
            _int(row[0], MAX_ID, "click_id"),
            _int(row[1], MAX_SMALL_ID, "banner_id"),
            _int(row[2], MAX_SMALL_ID, "campaign_id"),
        )
    return (
        _int(row[0], MAX_ID, "conversion_id"),
        _int(row[1], MAX_ID, "click_id"),
        _revenue(row[2]),
    )


def parse(kind: str, text: str, report: FileReport) -> list[tuple[Any, ...]]:
    """The valid rows; malformed ones go to the report with their line numbers."""
    lines = csv.reader(text.splitlines())
    header = next(lines, None)
    if header is None or [h.strip() for h in header] != HEADERS[kind]:
        raise Malformed(f"header must be {','.join(HEADERS[kind])}, found {header!r}")
    rows: list[tuple[Any, ...]] = []
    for number, row in enumerate(lines, start=2):
        if not row or not "".join(row).strip():
            continue  # a blank line is not a row
        report.rows += 1
        try:
            rows.append(_parse_row(kind, row))
        except Malformed as exc:
            report.malformed.append((number, str(exc)))
    return rows


def _chunks(rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def _store(
    cur: Any, quarter: int, kind: str, rows: list[tuple[Any, ...]], report: FileReport
) -> None:
    if kind == "impressions":
        counted = Counter((campaign, banner) for banner, campaign in rows)
        values = [(quarter, c, b, n) for (c, b), n in sorted(counted.items())]
        for chunk in _chunks(values):
            cur.executemany(
                "INSERT INTO banner_impressions (quarter, campaign_id, banner_id, impressions)"
                " VALUES (%s, %s, %s, %s)"
                " ON DUPLICATE KEY UPDATE impressions = impressions + VALUES(impressions)",
                chunk,
            )
        report.loaded = len(rows)
        return
    table, columns = {
        "clicks": ("banner_clicks", "quarter, click_id, banner_id, campaign_id"),
        "conversions": ("banner_conversions", "quarter, conversion_id, click_id, revenue"),
    }[kind]
    placeholders = ", ".join(["%s"] * 4)
    for chunk in _chunks(rows):
        cur.executemany(
            f"INSERT IGNORE INTO {table} ({columns}) VALUES ({placeholders})",
            [(quarter, *row) for row in chunk],
        )
        report.loaded += cur.rowcount
    report.skipped = len(rows) - report.loaded


def load_file(conn: pymysql.Connection, quarter: int, kind: str, path: Path) -> FileReport:
    report = FileReport(f"{quarter}/{path.name}")
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    with conn.cursor() as cur:
        cur.execute("SELECT ingested_at FROM banner_files WHERE sha256 = %s", (digest,))
        seen = cur.fetchone()
    if seen:
        report.status = f"rejected: identical content ingested at {seen[0]:%Y-%m-%d %H:%M:%S}"
        return report
    try:
        rows = parse(kind, content.decode("utf-8-sig", errors="replace"), report)
    except Malformed as exc:
        report.status = f"rejected: {exc}"
        return report
    conn.begin()
    try:
        with conn.cursor() as cur:
            _store(cur, quarter, kind, rows, report)
            cur.execute(
                "INSERT INTO banner_files (sha256, quarter, kind, name, rows_loaded, rows_skipped,"
                " rows_malformed) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    digest,
                    quarter,
                    kind,
                    report.name,
                    report.loaded,
                    report.skipped,
                    len(report.malformed),
                ),
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return report


def _quarter_sets(cur: Any, quarter: int) -> list[tuple[int, int, int, str, str]]:
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
    rows = []
    for campaign in sorted(set(shown) | set(stats)):
        chosen = select(quarter, campaign, stats[campaign].values(), shown[campaign])
        rows.append((quarter, campaign, chosen.x, chosen.rule, json.dumps(chosen.banners)))
    return rows


def recompute(conn: pymysql.Connection) -> int:
    """Recompute every quarter's sets in one transaction; returns the new generation."""
    conn.begin()
    try:
        with conn.cursor() as cur:
            # The first read fixes the transaction's snapshot: the files counted here are exactly
            # those whose rows the sets are computed from.
            cur.execute("SELECT COUNT(*) FROM banner_files")
            (files,) = cur.fetchone()
            rows = [row for quarter in QUARTERS for row in _quarter_sets(cur, quarter)]
            cur.execute("DELETE FROM banner_sets")
            for chunk in _chunks(rows):
                cur.executemany(
                    "INSERT INTO banner_sets (quarter, campaign_id, x, rule, banners)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    chunk,
                )
            cur.execute(
                "INSERT INTO banner_generation (id, generation, computed_at, files_included)"
                " VALUES (1, 1, NOW(6), %s) ON DUPLICATE KEY UPDATE generation = generation + 1,"
                " computed_at = NOW(6), files_included = VALUES(files_included)",
                (files,),
            )
            cur.execute("SELECT generation FROM banner_generation WHERE id = 1")
            (generation,) = cur.fetchone()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return int(generation)


def files_not_in_sets(conn: pymysql.Connection) -> int:
    """How many recorded files the served sets do not reflect: not 0 after an ingest that
    stopped between committing files and committing the sets (its rerun loads nothing new)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM banner_files")
        (files,) = cur.fetchone()
        cur.execute("SELECT files_included FROM banner_generation WHERE id = 1")
        row = cur.fetchone()
    if row is None:
        return int(files)
    if row[0] is None:
        return max(1, int(files))  # sets computed before the count was recorded: recompute once
    return abs(int(files) - int(row[0]))


def publish(shards: dict[str, str], generation: int) -> bool:
    if not shards:
        return False
    owner = ShardRing(shards).shard_for(SETS_CHANNEL)
    client = redis.Redis.from_url(shards[owner], socket_timeout=2)
    try:
        client.publish(SETS_CHANNEL, str(generation))
    except redis.RedisError as exc:
        log.warning(
            "could not publish the new sets; instances pick them up on their next check",
            extra={"error": repr(exc)},
        )
        return False
    finally:
        client.close()
    return True


def ingest(directory: Path, dsn: str, shards: dict[str, str], say: Callable[[str], None]) -> int:
    """Load every file of the dataset; returns the number of files newly loaded."""
    conn = connect_blocking(dsn, timeout_s=5)
    conn.autocommit(True)
    loaded = 0
    try:
        for quarter in QUARTERS:
            for kind in KINDS:
                path = directory / str(quarter) / f"{kind}_{quarter}.csv"
                if not path.is_file():
                    say(f"{quarter}/{path.name}: missing, skipped")
                    continue
                started = time.monotonic()
                report = load_file(conn, quarter, kind, path)
                took = time.monotonic() - started
                if report.status == "loaded":
                    loaded += 1
                    say(
                        f"{report.name}: {report.rows} rows, {report.loaded} loaded,"
                        f" {report.skipped} skipped (key exists), {len(report.malformed)} malformed"
                        f" ({took:.1f}s)"
                    )
                else:
                    say(f"{report.name}: {report.status}")
                    log.warning(
                        "file not ingested", extra={"file": report.name, "why": report.status}
                    )
                for line, reason in report.malformed[:SHOWN_MALFORMED]:
                    say(f"  {report.name}:{line}: {reason}")
                if len(report.malformed) > SHOWN_MALFORMED:
                    say(f"  ... and {len(report.malformed) - SHOWN_MALFORMED} more malformed rows")
        behind = 0 if loaded else files_not_in_sets(conn)
        if behind:
            say(f"nothing new, but the sets predate {behind} recorded file(s): recomputing")
        if loaded or behind:
            generation = recompute(conn)
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM banner_sets")
                (count,) = cur.fetchone()
            sent = publish(shards, generation)
            say(
                f"sets recomputed: {count} (quarter, campaign) sets, generation {generation}"
                + (", published" if sent else "")
            )
        else:
            say("nothing new: the sets are unchanged")
    finally:
        conn.close()
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--dsn", default=os.environ.get("MYSQL_DSN"), help="default: $MYSQL_DSN")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if not args.dsn:
        sys.exit("MYSQL_DSN is not set")
    if not args.directory.is_dir():
        sys.exit(f"{args.directory} is not a directory")
    shards = parse_shards(os.environ.get("REDIS_SHARDS", ""))
    ingest(args.directory, args.dsn, shards, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
