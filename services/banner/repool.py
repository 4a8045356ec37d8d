"""Tidy the gift-code keys on the Redis shards after REDIS_SHARDS changed.

    python -m services.banner.repool --to "$NEW_REDIS_SHARDS" [--from "$OLD_REDIS_SHARDS"]
                                                                 (MYSQL_DSN from the environment)

MySQL alone decides who holds a gift code (giftcodes.py), so a reshard cannot strand a code: a
claim never needs anything from Redis. What a shard may hold is the cache of confirmed bindings
(`giftcodes:<campaign>:holders`), which stays correct wherever it is, and, from before claims were
decided in MySQL, a pool (`:pool`) and a claim map (`:claims`) that must never be trusted again
(the claim map could name codes MySQL never recorded). On every shard named in either list it
records in MySQL the legacy claim maps' bindings MySQL lacks (_adopt), deletes the legacy keys,
and deletes the caches of campaigns the shard no longer owns (SCAN, never KEYS). It never puts a
code anywhere a claim could take it from; running it again finds nothing to do. The Kubernetes
rebalance Job runs it after the counter's rebalance, and the name stays so that Job keeps working.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass

import pymysql
from redis import Redis

from services.banner import store
from services.banner.giftcode_hints import owner_key, text
from services.common.dsn_arg import add_dsn_argument, dsn_of
from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from services.common.settings import parse_shards

CHUNK = 1000


@dataclass
class Report:
    bound: int = 0
    legacy_dropped: int = 0
    caches_dropped: int = 0


def _adopt(
    conn: pymysql.Connection, campaign_id: int, claims: dict[bytes | str, bytes | str]
) -> int:
    """Record the legacy claim map's bindings that MySQL lacks; returns how many it took.

    The old claim could answer a retry from its Redis map alone, so a visitor may hold a code
    MySQL never recorded: binding it to that visitor now keeps it from going to someone else.
    A code MySQL gave to another visitor, or a visitor MySQL knows with another code, stays so.
    """
    bound = 0
    with conn.cursor() as cur:
        for visitor, code in claims.items():
            # one_per_visitor refuses a visitor MySQL already records with another code.
            with contextlib.suppress(pymysql.err.IntegrityError):
                bound += store.bind_legacy_claim(cur, campaign_id, text(visitor), text(code))
    conn.commit()
    return bound


def repool(old: dict[str, str], new: dict[str, str], dsn: str) -> Report:
    ring = ShardRing(new)
    clients = {name: Redis.from_url(url, socket_timeout=5) for name, url in {**old, **new}.items()}
    report = Report()
    conn = connect_blocking(dsn, timeout_s=5)
    try:
        for name, client in clients.items():
            for raw in client.scan_iter(match="giftcodes:*", count=CHUNK):
                key = text(raw)
                parts = key.split(":")
                if len(parts) != 3 or not parts[1].isdigit():
                    continue
                campaign_id, kind = int(parts[1]), parts[2]
                if kind == "claims":
                    report.bound += _adopt(conn, campaign_id, client.hgetall(key))
                if kind in {"pool", "claims"}:
                    report.legacy_dropped += client.delete(key)
                elif ring.shard_for(owner_key(campaign_id)) != name:
                    # Every key of a campaign (the bindings cache, the candidates, the refill
                    # lock) lives on its owner: elsewhere it is left over from before a reshard.
                    report.caches_dropped += client.delete(key)
    finally:
        conn.close()
        for client in clients.values():
            client.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", dest="new", required=True, help="the current REDIS_SHARDS")
    parser.add_argument("--from", dest="old", default="", help="the previous REDIS_SHARDS")
    add_dsn_argument(parser)
    args = parser.parse_args()
    dsn = dsn_of(args)
    try:
        old, new = parse_shards(args.old), parse_shards(args.new)
    except ValueError as exc:
        sys.exit(str(exc))
    if not new:
        sys.exit("--to names no shard")
    report = repool(old, new, dsn)
    print(
        f"{report.bound} legacy claims recorded in MySQL,"
        f" {report.legacy_dropped} legacy pool and claim-map keys deleted,"
        f" {report.caches_dropped} keys left on shards that no longer own their campaign deleted"
    )


if __name__ == "__main__":
    main()
