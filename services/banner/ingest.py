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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pymysql
import redis

from services.banner import store
from services.banner.catalog import SETS_CHANNEL
from services.banner.dataset_format import HEADERS, csv_name
from services.banner.rules import QUARTERS, select
from services.common.dsn_arg import add_dsn_argument, dsn_of
from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from services.common.settings import parse_shards

log = logging.getLogger("services.banner.ingest")
KINDS = ("impressions", "clicks", "conversions")
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
    if header is None or tuple(h.strip() for h in header) != HEADERS[kind]:
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
            store.add_impressions(cur, chunk)
        report.loaded = len(rows)
        return
    for chunk in _chunks(rows):
        report.loaded += store.insert_events(cur, kind, quarter, chunk)
    report.skipped = len(rows) - report.loaded


def load_file(conn: pymysql.Connection, quarter: int, kind: str, path: Path) -> FileReport:
    report = FileReport(f"{quarter}/{path.name}")
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    with conn.cursor() as cur:
        seen = store.ingested_at(cur, digest)
    if seen is not None:
        report.status = f"rejected: identical content ingested at {seen:%Y-%m-%d %H:%M:%S}"
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
            counts = (report.loaded, report.skipped, len(report.malformed))
            store.record_file(cur, digest, quarter, kind, report.name, counts)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return report


def _quarter_sets(cur: Any, quarter: int) -> list[tuple[int, int, int, str, str]]:
    stats, shown = store.quarter_activity(cur, quarter)
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
            files = store.count_files(cur)
            rows = [row for quarter in QUARTERS for row in _quarter_sets(cur, quarter)]
            store.replace_sets(cur, rows, chunk=CHUNK)
            generation = store.next_generation(cur, files)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return generation


def files_not_in_sets(conn: pymysql.Connection) -> int:
    """How many recorded files the served sets do not reflect: not 0 after an ingest that
    stopped between committing files and committing the sets (its rerun loads nothing new)."""
    with conn.cursor() as cur:
        files = store.count_files(cur)
        included = store.files_in_sets(cur)
    if included is None:
        return files
    if included < 0:
        return max(1, files)  # sets computed before the count was recorded: recompute once
    return abs(files - included)


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
                path = directory / str(quarter) / csv_name(kind, quarter)
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
                count = store.count_sets(cur)
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
    add_dsn_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    dsn = dsn_of(args)
    if not args.directory.is_dir():
        sys.exit(f"{args.directory} is not a directory")
    shards = parse_shards(os.environ.get("REDIS_SHARDS", ""))
    ingest(args.directory, dsn, shards, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
